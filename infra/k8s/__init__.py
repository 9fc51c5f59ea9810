"""Kubernetes manifests of the template's functions, generated from infra/template.yaml, and their checks.

`python -m infra.k8s` (make k8s) writes deploy/k8s/base/functions.generated.yaml: for every function
of the template, whatever its name,

- a Deployment whose pod is one Lambda sandbox: the function's image (the Lambda Python 3.11 base
  image, its Runtime Interface Emulator on :8080, layers under /opt) runs as a native sidecar, with the
  invoke gate (infra/gate.py: Lambda's Invoke API on :9000, one invocation at a time) beside it; for a
  function with `Type: MQ` events the bridge (infra/bridge.py) is the main container and drives it.
  Kubernetes stops the main container first and sidecars after it, so an invocation in flight finishes
  (terminationGracePeriodSeconds = the function's Timeout + a minute). The template's environment
  comes from the `vid2mp3-secrets` Secret (variables of `NoEcho` parameters) and the `vid2mp3-config`
  ConfigMap (the rest); Timeout and MemorySize go to the emulator, MemorySize is the memory limit, CPU
  is capped as Lambda allots it (one vCPU per 1,769 MB) and /tmp is an emptyDir of EphemeralStorage;
- a Service (port 9000, the gate) for functions the front or a schedule invokes;
- for MQ functions a KEDA ScaledObject on their queues' length (to zero when idle) and a
  PodDisruptionBudget; for Schedule events a CronJob that sends EventBridge's scheduled event;
- a NetworkPolicy: ingress to the gate only from the front (HTTP functions) or the schedule, egress
  only to the backing services the function's `Metadata.Reaches` names (all of them when it names
  none), on their ports.

`python -m infra.k8s --check` renders each overlay with `kubectl kustomize` and validates every object
strictly offline: Kubernetes kinds with kubernetes-validate's bundled schemas (`strict`: unknown fields
are errors), KEDA's kinds against the JSON Schema of cloudcoil-models-keda (models generated from KEDA's
CRDs) made strict the same way.
"""

from infra.k8s.images import stage_images
from infra.k8s.manifests import (
    GATE_PORT,
    GENERATED,
    K8S,
    OVERLAYS,
    SERVICE_PORTS,
    function_objects,
    image_for,
    kubernetes_schedule,
    render,
)
from infra.k8s.validate import InvalidManifest, kustomize, validate

__all__ = [
    "GATE_PORT",
    "GENERATED",
    "K8S",
    "OVERLAYS",
    "SERVICE_PORTS",
    "InvalidManifest",
    "function_objects",
    "image_for",
    "kubernetes_schedule",
    "kustomize",
    "render",
    "stage_images",
    "validate",
]

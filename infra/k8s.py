"""Kubernetes manifests of the template's functions, generated from infra/template.yaml, and their checks.

`python -m infra k8s` (make k8s) writes deploy/k8s/base/functions.generated.yaml: for every function
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

`python -m infra k8s --check` renders each overlay with `kubectl kustomize` and validates every object
strictly offline: Kubernetes kinds with kubernetes-validate's bundled schemas (`strict`: unknown fields
are errors), KEDA's kinds against the JSON Schema of cloudcoil-models-keda (models generated from KEDA's
CRDs) made strict the same way.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from infra.front import k8s_name
from infra.template_model import TEMPLATE, functions, load_template, mq_event_sources, parameter_defaults

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
GENERATED = K8S / "base" / "functions.generated.yaml"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.32"
PLATFORM_IMAGE = "vid2mp3-platform"
GATE_PORT = 9000
RIE_PORT = 8080
LAMBDA_MB_PER_VCPU = 1769  # Lambda allots one vCPU per 1,769 MB of memory
SECRET = "vid2mp3-secrets"
CONFIG = "vid2mp3-config"
LABEL = "vid2mp3.dev/function"
SCHEDULES = "vid2mp3.dev/schedules"  # on a CronJob's pods: the function it invokes

# Backing services: the ports a function may reach them on (managed or in-cluster alike).
SERVICE_PORTS: dict[str, list[int]] = {
    "postgres": [5432],
    "mongodb": [27017],
    "rabbitmq": [5671, 5672],
    "smtp": [25, 465, 587, 1025],
    "aws": [443],  # AWS APIs over HTTPS (S3, ...)
}

# Requests from the benchmarks (README, "Performance"); the limit is always the template's MemorySize.
# convert: 84 MiB function + 19 MiB ffmpeg at peak on a 10-minute 720p file, one core per conversion;
# upload: a <= 10 MB request (the front's cap) spooled and probed; auth: argon2id takes 19 MiB a hash.
MEMORY_REQUEST_MI = {"ConvertFunction": 192, "UploadFunction": 256, "AuthFunction": 128}
CPU_REQUEST_M = {"ConvertFunction": 1000, "AuthFunction": 250}
DEFAULT_MEMORY_REQUEST_MI = 96
DEFAULT_CPU_REQUEST_M = 100
SIDECAR_RESOURCES = {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}}
BRIDGE_RESOURCES = {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"cpu": "250m", "memory": "128Mi"}}
RESTRICTED = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
              "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def image_for(code_uri: str) -> str:
    """One image per code directory (functions sharing CodeUri share it): vid2mp3-function-<dir>."""
    return f"vid2mp3-function-{code_uri.rstrip('/').rsplit('/', 1)[-1]}"


def _ref(value: Any) -> str | None:
    return value["Ref"] if isinstance(value, dict) and set(value) == {"Ref"} else None


def _env(template: Mapping[str, Any], props: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The template's environment: a NoEcho parameter's variable from the Secret, any other from the ConfigMap."""
    globals_props = (template.get("Globals") or {}).get("Function") or {}
    params = template.get("Parameters") or {}
    variables = {**((globals_props.get("Environment") or {}).get("Variables") or {}),
                 **((props.get("Environment") or {}).get("Variables") or {})}
    env: list[dict[str, Any]] = []
    for name, value in variables.items():
        param = _ref(value)
        if param is None:
            env.append({"name": name, "value": str(value)})
        else:
            spec = params.get(param) or {}
            source, ref = ("secretKeyRef", SECRET) if spec.get("NoEcho") else ("configMapKeyRef", CONFIG)
            key: dict[str, Any] = {"name": ref, "key": name}
            if "Default" in spec:
                key["optional"] = True  # an optional parameter: the key may be left out
            env.append({"name": name, "valueFrom": {source: key}})
    return env


def _int(value: Any, params: Mapping[str, Any]) -> int:
    param = _ref(value)
    return int(params[param] if param else value)


def kubernetes_schedule(expression: str) -> str:
    """EventBridge `rate(...)` / `cron(...)` as a Kubernetes CronJob schedule."""
    expression = expression.strip()
    if expression.startswith("rate(") and expression.endswith(")"):
        amount, unit = expression[5:-1].split()
        n = int(amount)
        unit = unit.rstrip("s")
        if unit == "minute":
            return "* * * * *" if n == 1 else f"*/{n} * * * *"
        if unit == "hour":
            return "0 * * * *" if n == 1 else f"0 */{n} * * *"
        if unit == "day":
            return "0 0 * * *" if n == 1 else f"0 0 */{n} * *"
    if expression.startswith("cron(") and expression.endswith(")"):
        fields = expression[5:-1].split()
        if len(fields) == 6:  # minutes hours day-of-month month day-of-week year
            return " ".join("*" if f == "?" else f for f in fields[:5])
    raise ValueError(f"cannot turn schedule {expression!r} into a CronJob schedule")


def function_objects(template: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The Kubernetes objects of every function of the template (see the module docstring)."""
    params = parameter_defaults(dict(template))
    globals_props = (template.get("Globals") or {}).get("Function") or {}
    resources = template.get("Resources") or {}
    api: dict[str, Any] = next((r for r in resources.values() if r.get("Type") == "AWS::Serverless::Api"), {})
    authorizers = ((api.get("Properties") or {}).get("Auth") or {}).get("Authorizers") or {}
    authorizer_functions = {(a.get("FunctionArn") or {}).get("Fn::GetAtt", [None])[0] for a in authorizers.values()}
    mq = mq_event_sources(dict(template))
    for logical_id, resource in functions(dict(template)).items():
        props = resource.get("Properties") or {}
        meta = resource.get("Metadata") or {}
        name = k8s_name(logical_id)
        events = props.get("Events") or {}
        kinds = {e.get("Type") for e in events.values()}
        queues = [s for s in mq if s.function == logical_id]
        http = "Api" in kinds or logical_id in authorizer_functions
        schedules = [(eid, e["Properties"]["Schedule"]) for eid, e in events.items() if e.get("Type") == "Schedule"]
        memory = _int(props.get("MemorySize", globals_props.get("MemorySize", 128)), params)
        timeout = _int(props.get("Timeout", globals_props.get("Timeout", 3)), params)
        tmp_mb = int((props.get("EphemeralStorage") or {}).get("Size", 512))
        labels = {"app.kubernetes.io/name": "vid2mp3", "app.kubernetes.io/component": "function", LABEL: name}
        if http:
            labels["vid2mp3.dev/invoked-by"] = "front"
        elif schedules:
            labels["vid2mp3.dev/invoked-by"] = "schedule"
        cpu_limit_m = max(100, round(memory * 1000 / LAMBDA_MB_PER_VCPU))
        function = {
            "name": "function",
            "image": image_for(str(props["CodeUri"])),
            "args": [str(props["Handler"])],
            # A native sidecar: started before, stopped after the main container.
            "restartPolicy": "Always",
            "ports": [{"name": "runtime", "containerPort": RIE_PORT}],
            "env": [
                {"name": "AWS_LAMBDA_FUNCTION_NAME", "value": logical_id},
                {"name": "AWS_LAMBDA_FUNCTION_TIMEOUT", "value": str(timeout)},
                {"name": "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "value": str(memory)},
                *_env(template, props),
            ],
            "resources": {
                "requests": {"cpu": f"{min(CPU_REQUEST_M.get(logical_id, DEFAULT_CPU_REQUEST_M), cpu_limit_m)}m",
                             "memory": f"{MEMORY_REQUEST_MI.get(logical_id, DEFAULT_MEMORY_REQUEST_MI)}Mi",
                             "ephemeral-storage": "64Mi"},
                "limits": {"cpu": f"{cpu_limit_m}m", "memory": f"{memory}Mi",
                           "ephemeral-storage": f"{tmp_mb + 64}Mi"},
            },
            "startupProbe": {"tcpSocket": {"port": "runtime"}, "periodSeconds": 1, "failureThreshold": 60},
            "securityContext": RESTRICTED,
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - Lambda's /tmp
        }
        gate = {
            "name": "gate",
            "image": PLATFORM_IMAGE,
            "args": ["python", "-m", "infra.gate", "--port", str(GATE_PORT), "--timeout", str(timeout)],
            "ports": [{"name": "invoke", "containerPort": GATE_PORT}],
            "readinessProbe": {"httpGet": {"path": "/_gate/health", "port": "invoke"}, "periodSeconds": 5},
            "livenessProbe": {"httpGet": {"path": "/_gate/health", "port": "invoke"}, "periodSeconds": 10,
                              "failureThreshold": 6},
            "resources": SIDECAR_RESOURCES,
            "securityContext": RESTRICTED,
        }
        if queues:
            gate["restartPolicy"] = "Always"
            main = {
                "name": "bridge",
                "image": PLATFORM_IMAGE,
                # RABBITMQ_URL from the environment, not the arguments: they are visible to every process.
                "args": ["python", "-m", "infra.bridge", "--invoke-url", f"http://127.0.0.1:{GATE_PORT}",
                         "--function", logical_id, "--grace", str(timeout)],
                "env": [{"name": "RABBITMQ_URL",
                         "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "RABBITMQ_URL"}}}],
                "resources": BRIDGE_RESOURCES,
                "securityContext": RESTRICTED,
            }
            init, containers = [function, gate], [main]
        else:
            init, containers = [function], [gate]
        pod_spec: dict[str, Any] = {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": timeout + 60,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
            "initContainers": init,
            "containers": containers,
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": f"{tmp_mb}Mi"}}],
        }
        deployment: dict[str, Any] = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {"selector": {"matchLabels": {LABEL: name}},
                     "template": {"metadata": {"labels": labels}, "spec": pod_spec}},
        }
        if queues:
            deployment["spec"]["replicas"] = 0  # KEDA scales it from the queue's length
        yield deployment
        if http or schedules:
            yield {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels},
                   "spec": {"selector": {LABEL: name},
                            "ports": [{"name": "invoke", "port": GATE_PORT, "targetPort": "invoke"}]}}
        if queues:
            batch = max(s.batch_size for s in queues)
            yield {
                "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "scaleTargetRef": {"name": name},
                    "minReplicaCount": 0,
                    "maxReplicaCount": 10,
                    "pollingInterval": 5,
                    "cooldownPeriod": max(60, timeout),
                    "triggers": [
                        {"type": "rabbitmq", "name": s.queue.replace(".", "-").replace("_", "-"),
                         "authenticationRef": {"name": "vid2mp3-rabbitmq"},
                         # Over the management API, QueueLength counts unacknowledged messages too: a
                         # conversion in flight keeps its pod.
                         "metadata": {"protocol": "http", "mode": "QueueLength", "value": str(batch),
                                      "queueName": s.queue}}
                        for s in queues
                    ],
                },
            }
            yield {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                   "metadata": {"name": name, "labels": labels},
                   "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {LABEL: name}}}}
        for event_id, expression in schedules:
            yield {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": f"{name}-{k8s_name(event_id)}-schedule", "labels": labels},
                   "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "schedule",
                                                            SCHEDULES: name}},
                            "policyTypes": ["Ingress", "Egress"], "ingress": [],
                            "egress": [{"to": [{"podSelector": {"matchLabels": {LABEL: name}}}],
                                        "ports": [{"protocol": "TCP", "port": GATE_PORT}]}]}}
            yield {
                "apiVersion": "batch/v1", "kind": "CronJob",
                "metadata": {"name": f"{name}-{k8s_name(event_id)}", "labels": labels},
                "spec": {
                    "schedule": kubernetes_schedule(str(expression)),
                    "concurrencyPolicy": "Forbid",
                    "startingDeadlineSeconds": 30,
                    "successfulJobsHistoryLimit": 1,
                    "failedJobsHistoryLimit": 3,
                    "jobTemplate": {"spec": {"backoffLimit": 0, "activeDeadlineSeconds": timeout + 60, "template": {
                        "metadata": {"labels": {"app.kubernetes.io/name": "vid2mp3",
                                                "app.kubernetes.io/component": "schedule", SCHEDULES: name}},
                        "spec": {
                            "restartPolicy": "Never",
                            "automountServiceAccountToken": False,
                            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                            "containers": [{
                                "name": "fire",
                                "image": PLATFORM_IMAGE,
                                "args": ["python", "-m", "infra.gate", "--fire", f"http://{name}:{GATE_PORT}",
                                         "--function", logical_id, "--event", event_id],
                                "resources": SIDECAR_RESOURCES,
                                "securityContext": RESTRICTED,
                            }],
                        },
                    }}},
                },
            }
        reaches = list(meta["Reaches"]) if "Reaches" in meta else list(SERVICE_PORTS)
        unknown = set(reaches) - set(SERVICE_PORTS)
        if unknown:
            raise ValueError(f"{logical_id}: Metadata.Reaches names unknown services {sorted(unknown)}")
        if queues and "rabbitmq" not in reaches:
            reaches.append("rabbitmq")  # the pod's bridge consumes the function's queues
        callers = []
        if http:
            callers.append({"podSelector": {"matchLabels": {"app.kubernetes.io/component": "front"}}})
        if schedules:
            callers.append({"podSelector": {"matchLabels": {"app.kubernetes.io/component": "schedule",
                                                            SCHEDULES: name}}})
        policy: dict[str, Any] = {
            "podSelector": {"matchLabels": {LABEL: name}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": callers, "ports": [{"protocol": "TCP", "port": GATE_PORT}]}] if callers else [],
            # No rule at all when it reaches nothing: a rule without ports would allow every port.
            "egress": [{"ports": [{"protocol": "TCP", "port": p} for s in reaches for p in SERVICE_PORTS[s]]}]
            if reaches else [],
        }
        yield {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": f"{name}", "labels": labels}, "spec": policy}


HEADER = """\
# GENERATED by `python -m infra k8s` (make k8s) from infra/template.yaml: do not edit.
# One Deployment per function, with its Service, KEDA ScaledObject, PodDisruptionBudget, CronJob and
# NetworkPolicy as the function needs them (infra/k8s.py says how each is derived).
"""


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # plain YAML: no anchors for the labels and security contexts shared between objects


def render(template: Mapping[str, Any]) -> str:
    docs = list(function_objects(template))
    return HEADER + yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, width=120)


# --------------------------------------------------------------------------------------------------
# Image contexts


def stage_images(built_template: Path, out: Path) -> list[Path]:
    """One Docker build context per code directory of the built template (deploy/docker/function.Dockerfile):
    `task/` (the function's built code, LAMBDA_TASK_ROOT) and `opt/` (the layers of every function sharing
    that code, merged in order as Lambda extracts them into /opt). Files are hard-linked where possible."""
    import os
    import shutil

    from infra.invoke import function_layers

    template = load_template(built_template)
    contexts: dict[Path, list[Path]] = {}
    for logical_id, resource in functions(template).items():
        code = (built_template.parent / str(resource["Properties"]["CodeUri"])).resolve()
        layers = contexts.setdefault(code, [])
        layers += [p for p in function_layers(template, logical_id, built_template.parent) if p not in layers]

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    made = []
    for code, layers in contexts.items():
        context = out / code.name
        shutil.rmtree(context, ignore_errors=True)
        shutil.copytree(code, context / "task", copy_function=link)
        (context / "opt").mkdir(parents=True)
        for layer in layers:
            shutil.copytree(layer, context / "opt", dirs_exist_ok=True, copy_function=link,
                            ignore=shutil.ignore_patterns(".build-key"))
        made.append(context)
    return made


# --------------------------------------------------------------------------------------------------
# Offline validation


class InvalidManifest(Exception):
    pass


def kustomize(overlay: str) -> list[dict[str, Any]]:
    result = subprocess.run(["kubectl", "kustomize", str(K8S / "overlays" / overlay)], capture_output=True,
                            text=True, timeout=120)
    if result.returncode != 0:
        raise InvalidManifest(f"kubectl kustomize {overlay}: {result.stderr.strip()}")
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def _strict(schema: Any) -> Any:
    """additionalProperties: false on every object schema with properties (kubernetes-validate's strict)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _keda_validator(kind: str) -> Any:
    import jsonschema
    from cloudcoil.models.keda import v1alpha1

    model = getattr(v1alpha1, kind)
    schema = _strict(model.model_json_schema(by_alias=True, mode="validation"))
    # The objects' metadata is Kubernetes' ObjectMeta, which kubernetes-validate checks elsewhere.
    schema["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft202012Validator(schema)


def validate(documents: list[dict[str, Any]], version: str = KUBERNETES_VERSION) -> list[str]:
    """Every problem found, as one line each (empty when all objects are valid)."""
    import kubernetes_validate.utils as kv

    problems: list[str] = []
    keda: dict[str, Any] = {}
    for doc in documents:
        where = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        if str(doc.get("apiVersion", "")).startswith("keda.sh/"):
            validator = keda.setdefault(doc["kind"], _keda_validator(doc["kind"]))
            for error in validator.iter_errors(doc):
                problems.append(f"{where}: {'.'.join(map(str, error.path))}: {error.message}")
            continue
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            problems.append(f"{where}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except kv.SchemaNotFoundError as exc:
            problems.append(f"{where}: {exc.message}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra k8s")
    parser.add_argument("--check", action="store_true", help="validate each overlay instead of generating")
    parser.add_argument("--stage-images", type=Path, metavar="OUT",
                        help="write a Docker build context per function image under OUT (after `make build`)")
    args = parser.parse_args(argv)
    if args.stage_images:
        for context in stage_images(ROOT / ".vid2mp3" / "build" / "template.yaml", args.stage_images):
            print(f"{image_for(context.name)}: {context}")
        return 0
    if not args.check:
        GENERATED.write_text(render(load_template(TEMPLATE)))
        print(f"wrote {GENERATED.relative_to(ROOT)}")
        return 0
    failed = False
    for overlay in OVERLAYS:
        docs = kustomize(overlay)
        problems = validate(docs)
        for problem in problems:
            print(f"{overlay}: {problem}", file=sys.stderr)
        failed = failed or bool(problems)
        print(f"{overlay}: {len(docs)} objects, {'INVALID' if problems else 'valid (strict)'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""The Kubernetes objects of every function of the template (see the package's docstring)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.front import k8s_name
from infra.template_model import MQEventSource, functions, mq_event_sources, parameter_defaults

ROOT = Path(__file__).resolve().parents[2]
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
    "webhooks": [],  # users' webhook receivers: any port, public addresses only (see network_policy)
}
# What "public" excludes for webhook receivers: private, loopback, link-local (cloud metadata) and
# carrier-grade NAT ranges, as the function's own address check does (vid2mp3.webhooks.targets).
PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16",
                  "100.64.0.0/10"]

# Requests from measurements; the limit is always the template's MemorySize. Peak resident memory
# (`python -m infra invoke`'s REPORT, the function's whole process tree, cold start included):
# authorizer 37 MB; auth 71 MB (argon2id takes 19 MiB a hash); upload 77 MB with a 4 MiB body; notify
# 52 MB; redrive 60 MB; convert 117 MB on a 1-minute 360p video, and bench/convert.py measures 84 MiB
# + 19 MiB for ffmpeg on a 10-minute 720p one, which encodes on one core (README, "Performance").
# The Lambda image's runtime interface emulator and client add about 20 MB.
MEMORY_REQUEST_MI = {"AuthorizerFunction": 64, "AuthFunction": 96, "UploadFunction": 128, "NotifyFunction": 80,
                     "RedriveFunction": 80, "ConvertFunction": 192}
CPU_REQUEST_M = {"ConvertFunction": 1000, "AuthFunction": 250}
DEFAULT_MEMORY_REQUEST_MI = 128
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
    """The template's environment: a literal as is, a NoEcho parameter's variable from the Secret, any other
    (a parameter, a resource's name or attribute) from the ConfigMap, under the variable's name."""
    globals_props = (template.get("Globals") or {}).get("Function") or {}
    params = template.get("Parameters") or {}
    variables = {**((globals_props.get("Environment") or {}).get("Variables") or {}),
                 **((props.get("Environment") or {}).get("Variables") or {})}
    env: list[dict[str, Any]] = []
    for name, value in variables.items():
        param = _ref(value)
        if not isinstance(value, dict):
            env.append({"name": name, "value": str(value)})
        else:
            spec = params.get(param) or {} if param else {}
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


@dataclass(frozen=True)
class Function:
    """What the manifests need to know about one function of the template."""

    logical_id: str
    props: dict[str, Any]
    memory_mb: int
    timeout_s: int
    tmp_mb: int
    queues: list[MQEventSource]
    http: bool  # invoked by the front: it has routes, or it is the API's authorizer
    schedules: list[tuple[str, str]]  # (event id, schedule expression)
    reaches: list[str]

    @property
    def name(self) -> str:
        return k8s_name(self.logical_id)

    @property
    def labels(self) -> dict[str, str]:
        labels = {"app.kubernetes.io/name": "vid2mp3", "app.kubernetes.io/component": "function", LABEL: self.name}
        if self.http or self.schedules:
            labels["vid2mp3.dev/invoked-by"] = "front" if self.http else "schedule"
        return labels

    def meta(self, name: str | None = None) -> dict[str, Any]:
        return {"name": name or self.name, "labels": self.labels}


def template_functions(template: Mapping[str, Any]) -> list[Function]:
    params = parameter_defaults(dict(template))
    globals_props = (template.get("Globals") or {}).get("Function") or {}
    resources = template.get("Resources") or {}
    api: dict[str, Any] = next((r for r in resources.values() if r.get("Type") == "AWS::Serverless::Api"), {})
    authorizers = ((api.get("Properties") or {}).get("Auth") or {}).get("Authorizers") or {}
    authorizer_functions = {(a.get("FunctionArn") or {}).get("Fn::GetAtt", [None])[0] for a in authorizers.values()}
    mq = mq_event_sources(dict(template))
    out = []
    for logical_id, resource in functions(dict(template)).items():
        props = resource.get("Properties") or {}
        meta = resource.get("Metadata") or {}
        events = props.get("Events") or {}
        queues = [s for s in mq if s.function == logical_id]
        reaches = list(meta["Reaches"]) if "Reaches" in meta else list(SERVICE_PORTS)
        unknown = set(reaches) - set(SERVICE_PORTS)
        if unknown:
            raise ValueError(f"{logical_id}: Metadata.Reaches names unknown services {sorted(unknown)}")
        if queues and "rabbitmq" not in reaches:
            reaches.append("rabbitmq")  # the pod's bridge consumes the function's queues
        out.append(Function(
            logical_id=logical_id,
            props=props,
            memory_mb=_int(props.get("MemorySize", globals_props.get("MemorySize", 128)), params),
            timeout_s=_int(props.get("Timeout", globals_props.get("Timeout", 3)), params),
            tmp_mb=int((props.get("EphemeralStorage") or {}).get("Size", 512)),
            queues=queues,
            http=any(e.get("Type") == "Api" for e in events.values()) or logical_id in authorizer_functions,
            schedules=[(eid, str(e["Properties"]["Schedule"])) for eid, e in events.items()
                       if e.get("Type") == "Schedule"],
            reaches=reaches,
        ))
    return out


def function_objects(template: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The Kubernetes objects of every function of the template (see the package's docstring)."""
    for fn in template_functions(template):
        yield deployment(template, fn)
        if fn.http or fn.schedules:
            yield {"apiVersion": "v1", "kind": "Service", "metadata": fn.meta(),
                   "spec": {"selector": {LABEL: fn.name},
                            "ports": [{"name": "invoke", "port": GATE_PORT, "targetPort": "invoke"}]}}
        if fn.queues:
            yield scaled_object(fn)
            yield {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": fn.meta(),
                   "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {LABEL: fn.name}}}}
        for event_id, expression in fn.schedules:
            yield from schedule(fn, event_id, expression)
        yield network_policy(fn)


def deployment(template: Mapping[str, Any], fn: Function) -> dict[str, Any]:
    """One pod, one Lambda sandbox: the function (RIE), its gate, and the bridge for queue functions."""
    cpu_limit_m = max(100, round(fn.memory_mb * 1000 / LAMBDA_MB_PER_VCPU))
    function = {
        "name": "function",
        "image": image_for(str(fn.props["CodeUri"])),
        "args": [str(fn.props["Handler"])],
        # A native sidecar: started before, stopped after the main container.
        "restartPolicy": "Always",
        "ports": [{"name": "runtime", "containerPort": RIE_PORT}],
        "env": [
            {"name": "AWS_LAMBDA_FUNCTION_NAME", "value": fn.logical_id},
            {"name": "AWS_LAMBDA_FUNCTION_TIMEOUT", "value": str(fn.timeout_s)},
            {"name": "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "value": str(fn.memory_mb)},
            *_env(template, fn.props),
        ],
        "resources": {
            "requests": {"cpu": f"{min(CPU_REQUEST_M.get(fn.logical_id, DEFAULT_CPU_REQUEST_M), cpu_limit_m)}m",
                         "memory": f"{MEMORY_REQUEST_MI.get(fn.logical_id, DEFAULT_MEMORY_REQUEST_MI)}Mi",
                         "ephemeral-storage": "64Mi"},
            "limits": {"cpu": f"{cpu_limit_m}m", "memory": f"{fn.memory_mb}Mi",
                       "ephemeral-storage": f"{fn.tmp_mb + 64}Mi"},
        },
        "startupProbe": {"tcpSocket": {"port": "runtime"}, "periodSeconds": 1, "failureThreshold": 60},
        "securityContext": RESTRICTED,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - Lambda's /tmp
    }
    gate = {
        "name": "gate",
        "image": PLATFORM_IMAGE,
        "args": ["python", "-m", "infra.gate", "--port", str(GATE_PORT), "--timeout", str(fn.timeout_s)],
        "ports": [{"name": "invoke", "containerPort": GATE_PORT}],
        "readinessProbe": {"httpGet": {"path": "/_gate/health", "port": "invoke"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/_gate/health", "port": "invoke"}, "periodSeconds": 10,
                          "failureThreshold": 6},
        "resources": SIDECAR_RESOURCES,
        "securityContext": RESTRICTED,
    }
    if fn.queues:
        gate["restartPolicy"] = "Always"
        bridge = {
            "name": "bridge",
            "image": PLATFORM_IMAGE,
            # RABBITMQ_URL from the environment, not the arguments: they are visible to every process.
            "args": ["python", "-m", "infra.bridge", "--invoke-url", f"http://127.0.0.1:{GATE_PORT}",
                     "--function", fn.logical_id, "--grace", str(fn.timeout_s)],
            "env": [{"name": "RABBITMQ_URL", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "RABBITMQ_URL"}}}],
            "resources": BRIDGE_RESOURCES,
            "securityContext": RESTRICTED,
        }
        init, containers = [function, gate], [bridge]
    else:
        init, containers = [function], [gate]
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {LABEL: fn.name}},
        "template": {"metadata": {"labels": fn.labels}, "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": fn.timeout_s + 60,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
            "initContainers": init,
            "containers": containers,
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": f"{fn.tmp_mb}Mi"}}],
        }},
    }
    if fn.queues:
        spec["replicas"] = 0  # KEDA scales it from the queue's length
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": fn.meta(), "spec": spec}


def scaled_object(fn: Function) -> dict[str, Any]:
    batch = max(s.batch_size for s in fn.queues)
    return {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": fn.meta(),
        "spec": {
            "scaleTargetRef": {"name": fn.name},
            "minReplicaCount": 0,
            "maxReplicaCount": 10,
            "pollingInterval": 5,
            "cooldownPeriod": max(60, fn.timeout_s),
            "triggers": [
                {"type": "rabbitmq", "name": s.queue.replace(".", "-").replace("_", "-"),
                 "authenticationRef": {"name": "vid2mp3-rabbitmq"},
                 # Over the management API, QueueLength counts unacknowledged messages too: a
                 # conversion in flight keeps its pod.
                 "metadata": {"protocol": "http", "mode": "QueueLength", "value": str(batch), "queueName": s.queue}}
                for s in fn.queues
            ],
        },
    }


def schedule(fn: Function, event_id: str, expression: str) -> Iterator[dict[str, Any]]:
    """EventBridge's part: a CronJob sending the scheduled event to the function's gate, and its policy."""
    name = f"{fn.name}-{k8s_name(event_id)}"
    pod_labels = {"app.kubernetes.io/name": "vid2mp3", "app.kubernetes.io/component": "schedule",
                  SCHEDULES: fn.name}
    yield {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": fn.meta(f"{name}-schedule"),
           "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "schedule", SCHEDULES: fn.name}},
                    "policyTypes": ["Ingress", "Egress"], "ingress": [],
                    "egress": [{"to": [{"podSelector": {"matchLabels": {LABEL: fn.name}}}],
                                "ports": [{"protocol": "TCP", "port": GATE_PORT}]}]}}
    container = {
        "name": "fire",
        "image": PLATFORM_IMAGE,
        "args": ["python", "-m", "infra.gate", "--fire", f"http://{fn.name}:{GATE_PORT}",
                 "--function", fn.logical_id, "--event", event_id],
        "resources": SIDECAR_RESOURCES,
        "securityContext": RESTRICTED,
    }
    pod = {"metadata": {"labels": pod_labels},
           "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001}, "containers": [container]}}
    yield {
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": fn.meta(name),
        "spec": {
            "schedule": kubernetes_schedule(expression),
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 30,
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"spec": {"backoffLimit": 0, "activeDeadlineSeconds": fn.timeout_s + 60,
                                     "template": pod}},
        },
    }


def network_policy(fn: Function) -> dict[str, Any]:
    """Ingress to the gate only from the function's callers; egress only to the services it reaches."""
    callers = []
    if fn.http:
        callers.append({"podSelector": {"matchLabels": {"app.kubernetes.io/component": "front"}}})
    if fn.schedules:
        callers.append({"podSelector": {"matchLabels": {"app.kubernetes.io/component": "schedule",
                                                        SCHEDULES: fn.name}}})
    ports = [{"protocol": "TCP", "port": p} for s in fn.reaches for p in SERVICE_PORTS[s]]
    egress: list[dict[str, Any]] = [{"ports": ports}] if ports else []
    if "webhooks" in fn.reaches:
        egress.append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_RANGES}}]})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": fn.meta(), "spec": {
        "podSelector": {"matchLabels": {LABEL: fn.name}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": callers, "ports": [{"protocol": "TCP", "port": GATE_PORT}]}] if callers else [],
        # No rule at all when it reaches nothing: a rule without ports would allow every port.
        "egress": egress,
    }}


HEADER = """\
# GENERATED by `python -m infra.k8s` (make k8s) from infra/template.yaml: do not edit.
# One Deployment per function, with its Service, KEDA ScaledObject, PodDisruptionBudget, CronJob and
# NetworkPolicy as the function needs them (infra/k8s/ says how each is derived).
"""


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # plain YAML: no anchors for the labels and security contexts shared between objects


def render(template: Mapping[str, Any]) -> str:
    docs = list(function_objects(template))
    return HEADER + yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, width=120)



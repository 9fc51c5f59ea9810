"""deploy/k8s: generated from the template, consistent with it, and strictly valid offline.

`kubectl kustomize` renders each overlay (kubectl with kustomize v5 must be on PATH); Kubernetes kinds
are validated with kubernetes-validate's bundled schemas in strict mode, KEDA's against its CRDs' models
(infra/k8s/).
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest

from infra import k8s
from infra.apigw import rest_api
from infra.front import k8s_name
from infra.template_model import functions, load_template, mq_event_sources

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template()


@pytest.fixture(scope="module", params=k8s.OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl (with kustomize v5) is required to render deploy/k8s")
    return request.param, k8s.kustomize(request.param)


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_templates(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    pods = [d["spec"]["template"] for d in docs if d["kind"] in ("Deployment", "Job")]
    pods += [d["spec"]["jobTemplate"]["spec"]["template"] for d in docs if d["kind"] == "CronJob"]
    return pods


def test_the_generated_manifests_are_up_to_date() -> None:
    assert k8s.GENERATED.read_text() == k8s.render(TEMPLATE), (
        "deploy/k8s/base/functions.generated.yaml is stale: run `make k8s`")


def test_each_overlay_validates_strictly(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, docs = rendered
    assert k8s.validate(docs) == [], overlay
    kinds = {d["kind"] for d in docs}
    assert {"ScaledObject", "TriggerAuthentication", "NetworkPolicy", "PodDisruptionBudget"} <= kinds


def test_validation_is_strict_for_kubernetes_and_keda_kinds(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    bad = copy.deepcopy(docs)
    deployment = next(d for d in bad if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    scaled = next(d for d in bad if d["kind"] == "ScaledObject")
    scaled["spec"]["triggers"][0]["metadataa"] = {}
    scaled["spec"]["minReplicaCount"] = "zero"
    problems = k8s.validate(bad)
    assert any("imagePullPolicyy" in p for p in problems)
    assert any("metadataa" in p for p in problems) and any("minReplicaCount" in p for p in problems)


def test_every_function_has_a_deployment_with_its_handler_limits_and_environment(
        rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    deployments = of_kind(docs, "Deployment")
    globals_env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    for logical_id, resource in functions(TEMPLATE).items():
        props = resource["Properties"]
        spec = deployments[k8s_name(logical_id)]["spec"]["template"]["spec"]
        (function,) = [c for c in spec["initContainers"] if c["name"] == "function"]
        assert function["args"] == [props["Handler"]]
        assert function["image"].split("/")[-1].split(":")[0] == k8s.image_for(props["CodeUri"])
        env = {e["name"]: e for e in function["env"]}
        assert set(globals_env) | set((props.get("Environment") or {}).get("Variables") or {}) <= set(env)
        memory = props.get("MemorySize", TEMPLATE["Globals"]["Function"]["MemorySize"])
        timeout = props.get("Timeout", TEMPLATE["Globals"]["Function"]["Timeout"])
        assert function["resources"]["limits"]["memory"] == f"{memory}Mi"
        assert env["AWS_LAMBDA_FUNCTION_TIMEOUT"]["value"] == str(timeout)
        assert spec["terminationGracePeriodSeconds"] > timeout


def test_services_select_pods_and_name_their_ports(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    pods = pod_templates(docs)
    for name, service in of_kind(docs, "Service").items():
        selector = service["spec"]["selector"]
        matching = [p for p in pods if selector.items() <= p["metadata"]["labels"].items()]
        assert matching, f"Service {name} selects no pod"
        for port in service["spec"]["ports"]:
            containers = [c for p in matching for c in p["spec"]["containers"] + p["spec"].get("initContainers", [])]
            names = {cp.get("name") for c in containers for cp in c.get("ports", [])}
            numbers = {cp["containerPort"] for c in containers for cp in c.get("ports", [])}
            assert port["targetPort"] in names | numbers, f"Service {name}: no container port {port['targetPort']}"


def test_the_front_reaches_every_function_it_routes_to(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    api = rest_api(TEMPLATE)
    services = of_kind(docs, "Service")
    invoked = {r.function for r in api.routes} | ({api.authorizer.function} if api.authorizer else set())
    for logical_id in invoked:
        service = services[k8s_name(logical_id)]
        assert service["spec"]["ports"][0]["port"] == k8s.GATE_PORT
    front = of_kind(docs, "Deployment")["front"]["spec"]["template"]["spec"]["containers"][0]
    assert f"http://{{name}}:{k8s.GATE_PORT}" in front["args"]


def test_queue_functions_are_bridged_and_scaled_on_the_templates_queues(
        rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    scaled, deployments = of_kind(docs, "ScaledObject"), of_kind(docs, "Deployment")
    pdbs = of_kind(docs, "PodDisruptionBudget")
    by_function: dict[str, set[str]] = {}
    for source in mq_event_sources(TEMPLATE):
        by_function.setdefault(source.function, set()).add(source.queue)
    assert by_function, "the template has MQ events"
    for logical_id, queues in by_function.items():
        name = k8s_name(logical_id)
        triggers = scaled[name]["spec"]["triggers"]
        assert {t["metadata"]["queueName"] for t in triggers} == queues
        assert scaled[name]["spec"]["minReplicaCount"] == 0 and scaled[name]["spec"]["scaleTargetRef"]["name"] == name
        (bridge,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert bridge["args"][bridge["args"].index("--function") + 1] == logical_id
        assert name in pdbs
    assert set(scaled) == {k8s_name(f) for f in by_function}


def test_credentials_come_from_the_secret_and_every_key_exists(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, docs = rendered
    secret_keys: dict[str, set[str]] = {}  # Secret name (without kustomize's hash) -> keys used
    config_keys: set[str] = set()
    for pod in pod_templates(docs):
        for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
            for e in c.get("env", []):
                ref = e.get("valueFrom") or {}
                if "secretKeyRef" in ref:
                    secret_keys.setdefault(ref["secretKeyRef"]["name"].rsplit("-", 1)[0], set()).add(
                        ref["secretKeyRef"]["key"])
                if "configMapKeyRef" in ref:
                    config_keys.add(ref["configMapKeyRef"]["key"])
                assert not any(w in e["name"] for w in ("PASS", "SECRET")) or "value" not in e, e
    for d in docs:
        if d["kind"] == "TriggerAuthentication":
            for r in d["spec"]["secretTargetRef"]:
                secret_keys.setdefault(r["name"].rsplit("-", 1)[0], set()).add(r["key"])
    ours = secret_keys.pop("vid2mp3", set()) | secret_keys.pop("vid2mp3-secrets", set())
    (config,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("vid2mp3-config")]
    assert config_keys <= set(config["data"])
    example = ROOT / "deploy" / "k8s" / "overlays" / "prod" / "secret.env.example"
    documented = {line.split("=", 1)[0] for line in example.read_text().splitlines() if line and line[0] != "#"}
    assert documented == ours
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    if overlay == "dev":
        (name,) = [n for n in secrets if n.startswith("vid2mp3-secrets")]
        assert set(secrets[name]["data"]) == ours
        for other, keys in secret_keys.items():  # the in-cluster services' own
            (name,) = [n for n in secrets if n.startswith(other)]
            assert keys <= set(secrets[name]["data"])
    else:
        assert not secrets and not secret_keys, "prod's credentials are not in the manifests"


def test_network_policies_let_each_pod_reach_only_what_it_uses(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    policies = of_kind(docs, "NetworkPolicy")
    assert policies["default-deny"]["spec"]["podSelector"] == {}
    for logical_id, resource in functions(TEMPLATE).items():
        reaches = set((resource.get("Metadata") or {}).get("Reaches", k8s.SERVICE_PORTS))
        if any(s.function == logical_id for s in mq_event_sources(TEMPLATE)):
            reaches.add("rabbitmq")
        egress = policies[k8s_name(logical_id)]["spec"]["egress"]
        allowed = {p["port"] for rule in egress for p in rule.get("ports", [])}
        assert allowed == {p for s in reaches for p in k8s.SERVICE_PORTS[s]}, logical_id
        anywhere = [rule for rule in egress if "ports" not in rule]
        if "webhooks" in reaches:  # any port, but public addresses only: never the cluster or metadata
            [rule] = anywhere
            [block] = rule["to"]
            assert block["ipBlock"]["cidr"] == "0.0.0.0/0"
            assert {"10.0.0.0/8", "169.254.0.0/16", "127.0.0.0/8"} <= set(block["ipBlock"]["except"])
        else:
            assert anywhere == [], logical_id
    assert policies["authorizer-function"]["spec"]["egress"] == []


def test_schedules_become_cronjobs() -> None:
    assert k8s.kubernetes_schedule("rate(1 minute)") == "* * * * *"
    assert k8s.kubernetes_schedule("rate(5 minutes)") == "*/5 * * * *"
    assert k8s.kubernetes_schedule("rate(2 hours)") == "0 */2 * * *"
    assert k8s.kubernetes_schedule("cron(15 10 ? * MON-FRI *)") == "15 10 * * MON-FRI"
    with pytest.raises(ValueError):
        k8s.kubernetes_schedule("at(2030-01-01T00:00:00)")
    crons = [d for d in k8s.function_objects(TEMPLATE) if d["kind"] == "CronJob"]
    schedules = [e for r in functions(TEMPLATE).values() for e in (r["Properties"].get("Events") or {}).values()
                 if e["Type"] == "Schedule"]
    assert len(crons) == len(schedules)

"""Offline validation of the rendered overlays (see the package's docstring)."""

from __future__ import annotations

import subprocess
from typing import Any

import yaml

from infra.k8s.manifests import K8S, KUBERNETES_VERSION


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

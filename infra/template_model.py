"""Read infra/template.yaml: the functions, layers and `Type: MQ` event sources it declares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parent / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short-form tags (!Ref, !GetAtt, !Sub ...) into long form."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} is not a template")
    return data


@dataclass(frozen=True)
class MQEventSource:
    """One `Type: MQ` event of a function: what the AWS event source mapping would do."""

    function: str  # logical id of the function
    event: str  # logical id of the event
    queue: str
    virtual_host: str
    batch_size: int
    batching_window_s: float
    concurrency: int


def _resolve(value: Any, parameters: dict[str, Any]) -> Any:
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in parameters:
        return parameters[value["Ref"]]
    return value


def parameter_defaults(template: dict[str, Any]) -> dict[str, Any]:
    return {k: v.get("Default") for k, v in (template.get("Parameters") or {}).items()}


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    resources = template.get("Resources") or {}
    return {k: v for k, v in resources.items() if v.get("Type") == "AWS::Serverless::Function"}


def mq_event_sources(template: dict[str, Any], parameters: dict[str, Any] | None = None) -> list[MQEventSource]:
    """Every `Type: MQ` event, with AWS's defaults where the template is silent.

    The concurrency of a mapping comes from the function's `Metadata.Bridge.MaxConcurrency`
    (resolved against the parameters); one concurrent invocation per mapping otherwise, as AWS.
    """
    params = {**parameter_defaults(template), **(parameters or {})}
    sources: list[MQEventSource] = []
    for logical_id, resource in functions(template).items():
        bridge_meta = (resource.get("Metadata") or {}).get("Bridge") or {}
        concurrency = int(_resolve(bridge_meta.get("MaxConcurrency", 1), params))
        for event_id, event in ((resource.get("Properties") or {}).get("Events") or {}).items():
            if event.get("Type") != "MQ":
                continue
            props = event.get("Properties") or {}
            vhost = "/"
            for access in props.get("SourceAccessConfigurations") or []:
                if access.get("Type") == "VIRTUAL_HOST":
                    vhost = str(_resolve(access.get("URI"), params))
            for queue in props.get("Queues") or []:
                sources.append(
                    MQEventSource(
                        function=logical_id,
                        event=event_id,
                        queue=str(_resolve(queue, params)),
                        virtual_host=vhost,
                        # AWS defaults for Amazon MQ: batch size 100, batching window 500 ms.
                        batch_size=int(_resolve(props.get("BatchSize", 100), params)),
                        batching_window_s=float(
                            _resolve(props.get("MaximumBatchingWindowInSeconds", 0.5), params)
                        ),
                        concurrency=max(1, concurrency),
                    )
                )
    return sources

"""The response of an API Gateway TOKEN authorizer: an IAM policy, a principal and a context."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

POLICY_VERSION = "2012-10-17"


def api_wide_resource(method_arn: str) -> str:
    """`arn:aws:execute-api:region:account:api/stage/*/*` from the ARN of the method being called.

    API Gateway caches an authorizer's policy per token and replays it for every route of the API;
    a policy naming only the first method would deny the next route with the same cached token.
    """
    parts = method_arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "execute-api":
        raise ValueError("not an execute-api method ARN")
    api_id, _, rest = parts[5].partition("/")
    stage = rest.partition("/")[0]
    if not api_id or not stage:
        raise ValueError("the method ARN names no API id and stage")
    return f"{':'.join(parts[:5])}:{api_id}/{stage}/*/*"


def allow_policy(principal_id: str, resource: str, context: Mapping[str, str]) -> dict[str, Any]:
    """An Allow for `resource`; context values must be strings (API Gateway flattens the rest)."""
    return {
        "principalId": principal_id,
        "policyDocument": {
            "Version": POLICY_VERSION,
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resource}],
        },
        "context": dict(context),
    }

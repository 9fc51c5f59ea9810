"""The API Gateway TOKEN authorizer's decision: an IAM policy, a principal and a context.

Kept free of the database and password hashing, so the authorizer's cold start imports little.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from vid2mp3.auth.identity import CONTEXT_EMAIL, CONTEXT_TOKEN_VERSION, CONTEXT_USER_ID
from vid2mp3.auth.tokens import TokenService
from vid2mp3.errors import Unauthorized

POLICY_VERSION = "2012-10-17"

_BEARER = re.compile(r"\s*Bearer\s+(\S+)\s*", re.IGNORECASE)


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


def bearer_token(authorization: object) -> str:
    """The token of an `Authorization: Bearer <token>` value (the scheme is case-insensitive)."""
    match = _BEARER.fullmatch(authorization) if isinstance(authorization, str) else None
    if match is None:
        raise Unauthorized("A Bearer token is required.", code="invalid_token")
    return match.group(1)


def authorize(event: Mapping[str, Any], *, tokens: TokenService) -> dict[str, Any]:
    """The response of a TOKEN authorizer: Allow on the whole API for a valid token.

    Unauthorized for a missing, malformed, tampered, wrongly signed, `alg: none` or expired token;
    ValueError for an event that is not a TOKEN authorizer event.
    """
    resource = api_wide_resource(str(event.get("methodArn", "")))
    claims = tokens.verify(bearer_token(event.get("authorizationToken")))
    context = {CONTEXT_USER_ID: claims.user_id, CONTEXT_EMAIL: claims.email,
               CONTEXT_TOKEN_VERSION: str(claims.token_version)}
    return allow_policy(claims.user_id, resource, context)

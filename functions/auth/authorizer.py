"""API Gateway TOKEN authorizer (JWT) for every route but /health, /auth/register and /auth/login.

A valid `Authorization: Bearer <jwt>` yields an Allow for the whole API (the gateway caches the
result per token and replays it for every route), principalId = the user id, and the context
{"user_id", "email"}. Anything else raises Exception("Unauthorized"): that exact message is what makes
API Gateway answer 401 (any other error becomes a 500). The token itself is never logged.
"""

from __future__ import annotations

from typing import Any

from vid2mp3.auth.policy import authorize
from vid2mp3.auth.tokens import TokenService
from vid2mp3.errors import Unauthorized
from vid2mp3.log import get_logger
from vid2mp3.settings import load_settings
from vid2mp3.warmup import warmable

logger = get_logger("auth-authorizer")
_tokens: TokenService | None = None


def tokens() -> TokenService:
    """Built on the first event of a cold start (ConfigError without a valid JWT_SECRET), then reused."""
    global _tokens
    if _tokens is None:
        _tokens = TokenService.from_settings(load_settings())
    return _tokens


@warmable
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return authorize(event, tokens=tokens())
    except Unauthorized as exc:
        logger.info("token refused", extra={"code": exc.code})
    except ValueError:
        logger.warning("not a TOKEN authorizer event", extra={"event_type": str(event.get("type"))})
    # API Gateway answers 401 for exactly this message; any other error becomes a 500.
    raise Exception("Unauthorized")

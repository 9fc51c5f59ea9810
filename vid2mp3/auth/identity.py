"""Who is calling: the identity our authorizer hands to every protected route.

Kept apart from the auth service so the other functions read the caller without importing
argon2, pyjwt or the email validator at cold start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from vid2mp3.errors import Unauthorized

# The keys of the authorizer context (strings only, as API Gateway requires).
CONTEXT_USER_ID = "user_id"
CONTEXT_EMAIL = "email"
CONTEXT_TOKEN_VERSION = "token_version"


@dataclass(frozen=True)
class Identity:
    user_id: str
    email: str
    token_version: int = 0  # of the token the caller sent (vid2mp3.auth.sessions compares it)


def identity_from_authorizer(context: Mapping[str, Any] | None) -> Identity:
    """The caller, from `requestContext.authorizer` as API Gateway passes our authorizer's output."""
    context = context or {}
    user_id = context.get(CONTEXT_USER_ID) or context.get("principalId")
    email = context.get(CONTEXT_EMAIL)
    if not (isinstance(user_id, str) and user_id and isinstance(email, str) and email):
        raise Unauthorized()
    version = str(context.get(CONTEXT_TOKEN_VERSION) or "0")
    return Identity(user_id=user_id, email=email, token_version=int(version) if version.isdigit() else -1)


class TokenVersions(Protocol):
    def token_version(self, user_id: str) -> int | None:
        """The account's current token version; None when the account does not exist (any more)."""


def check_session(identity: Identity, versions: TokenVersions) -> Identity:
    """The caller, once their token is still good: the account exists and the token was issued under its
    current version (a password change bumps it). The gateway caches an authorizer's Allow for up to a
    minute; this check runs on every request, so a revoked token is refused at once."""
    current = versions.token_version(identity.user_id)
    if current is None:
        raise Unauthorized("This account no longer exists.", code="account_deleted")
    if identity.token_version != current:
        raise Unauthorized("This token was revoked (the password changed); log in again.", code="token_revoked")
    return identity

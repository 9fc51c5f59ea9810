"""Who is calling: the identity our authorizer hands to every protected route.

Kept apart from the auth service so the other functions read the caller without importing
argon2, pyjwt or the email validator at cold start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vid2mp3.errors import Unauthorized

# The keys of the authorizer context (strings only, as API Gateway requires).
CONTEXT_USER_ID = "user_id"
CONTEXT_EMAIL = "email"


@dataclass(frozen=True)
class Identity:
    user_id: str
    email: str


def identity_from_authorizer(context: Mapping[str, Any] | None) -> Identity:
    """The caller, from `requestContext.authorizer` as API Gateway passes our authorizer's output."""
    context = context or {}
    user_id = context.get(CONTEXT_USER_ID) or context.get("principalId")
    email = context.get(CONTEXT_EMAIL)
    if not (isinstance(user_id, str) and user_id and isinstance(email, str) and email):
        raise Unauthorized()
    return Identity(user_id=user_id, email=email)

"""Access tokens: HS256 JWTs (pyjwt) with pinned algorithm, required claims and a `kid` for key rotation.

Rotation: set JWT_PREVIOUS_SECRET to the old JWT_SECRET and JWT_SECRET to a new one. New tokens are
signed with the new key; tokens signed with the old one keep verifying until they expire, which is
at most one TTL later because no token is accepted whose lifetime (`exp - iat`) exceeds the TTL.
After one TTL, JWT_PREVIOUS_SECRET can be removed. The `kid` header names the key that signed a
token (a short fingerprint of it, never the key), so verification tries exactly one key.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from vid2mp3.errors import Unauthorized
from vid2mp3.settings import Settings

ALGORITHM = "HS256"
ISSUER = "vid2mp3"
AUDIENCE = "vid2mp3-api"
REQUIRED_CLAIMS = ("sub", "iat", "exp", "iss", "aud")
MIN_KEY_BYTES = 32
# Clock skew tolerated between the function that signs and the one that verifies.
LEEWAY_SECONDS = 5


def key_id(key: bytes) -> str:
    """A short, stable fingerprint of a signing key for the `kid` header (reveals nothing usable)."""
    return hashlib.sha256(b"vid2mp3-jwt-kid\x00" + key).hexdigest()[:16]


@dataclass(frozen=True)
class TokenClaims:
    user_id: str
    email: str
    issued_at: int
    expires_at: int
    token_version: int = 0  # the account's token version when it was issued (`ver`; 0 when absent)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int


def _invalid(message: str = "The access token is not valid.") -> Unauthorized:
    return Unauthorized(message, code="invalid_token")


class TokenService:
    """Issues and verifies access tokens; `clock` (epoch seconds) stamps `iat`/`exp` on issue."""

    def __init__(
        self,
        key: bytes,
        *,
        previous_key: bytes | None = None,
        ttl_seconds: int = 3600,
        clock: Callable[[], float] = time.time,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
    ) -> None:
        for k in (key, previous_key):
            if k is not None and len(k) < MIN_KEY_BYTES:
                raise ValueError(f"a JWT signing key must be at least {MIN_KEY_BYTES} bytes long")
        if ttl_seconds <= 0:
            raise ValueError("the token TTL must be positive")
        self._key = key
        self._kid = key_id(key)
        self._keys = {self._kid: key}
        if previous_key is not None and previous_key != key:
            self._keys[key_id(previous_key)] = previous_key
        self._ttl = ttl_seconds
        self._clock = clock
        self._issuer = issuer
        self._audience = audience

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], float] = time.time) -> TokenService:
        """Raises ConfigError when JWT_SECRET is missing, so a function cannot start without it."""
        previous = settings.jwt_previous_secret
        return cls(
            settings.jwt_key(),
            previous_key=previous.get_secret_value().encode() if previous is not None else None,
            ttl_seconds=settings.jwt_ttl_seconds,
            clock=clock,
        )

    @property
    def ttl_seconds(self) -> int:
        return self._ttl

    @property
    def kid(self) -> str:
        return self._kid

    def issue(self, user_id: str, email: str, version: int = 0) -> IssuedToken:
        now = int(self._clock())
        claims: dict[str, Any] = {
            "sub": user_id,
            "email": email,
            "ver": version,
            "iat": now,
            "exp": now + self._ttl,
            "iss": self._issuer,
            "aud": self._audience,
        }
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self._kid})
        return IssuedToken(token=token, expires_in=self._ttl)

    def verify(self, token: str) -> TokenClaims:
        """The claims of a valid token; Unauthorized (code `invalid_token` or `token_expired`) otherwise.

        The expiry is checked against the real time (pyjwt's), not `clock`.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise _invalid() from None
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise _invalid()
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],  # pinned: "none" and every other algorithm are refused
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": list(REQUIRED_CLAIMS), "strict_aud": True},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The access token has expired.", code="token_expired") from None
        except jwt.InvalidTokenError:
            raise _invalid() from None
        sub, email, iat, exp = claims.get("sub"), claims.get("email"), claims.get("iat"), claims.get("exp")
        if not (isinstance(sub, str) and sub and isinstance(email, str) and email):
            raise _invalid()
        if not (isinstance(iat, int) and isinstance(exp, int)) or exp - iat > self._ttl:
            raise _invalid()
        ver = claims.get("ver", 0)
        if not isinstance(ver, int) or isinstance(ver, bool) or ver < 0:
            raise _invalid()
        return TokenClaims(user_id=sub, email=email, issued_at=iat, expires_at=exp, token_version=ver)

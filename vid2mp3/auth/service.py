"""Register, log in, tell who is calling: every dependency comes in as a parameter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vid2mp3.auth.passwords import PasswordHasher
from vid2mp3.auth.throttle import LoginThrottle
from vid2mp3.auth.tokens import IssuedToken, TokenService
from vid2mp3.auth.users import User, UserRepository
from vid2mp3.auth.validation import parse_login, parse_registration
from vid2mp3.errors import Unauthorized


@dataclass(frozen=True)
class LoginResult:
    user: User
    token: IssuedToken
    rehashed: bool  # the stored hash was upgraded to the current parameters


def invalid_credentials() -> Unauthorized:
    # One message for an unknown email and a wrong password: the answer must not tell them apart.
    return Unauthorized("The email or password is incorrect.", code="invalid_credentials")


def register(body: dict[str, Any], *, users: UserRepository, hasher: PasswordHasher) -> User:
    """Create an account; InvalidInput for a bad body, Conflict `email_taken` for a known email."""
    credentials = parse_registration(body)
    return users.add(credentials.email, hasher.hash(credentials.password))


def login(
    body: dict[str, Any],
    *,
    source_ip: str | None,
    now: float,
    users: UserRepository,
    hasher: PasswordHasher,
    throttle: LoginThrottle,
    tokens: TokenService,
) -> LoginResult:
    """An access token for valid credentials.

    Unauthorized `invalid_credentials` for an unknown email or a wrong password alike (an unknown
    email is verified against a dummy hash so that both cost one argon2 verification);
    TooManyRequests while the account or the source IP is locked out.
    """
    credentials = parse_login(body)

    def check() -> User | None:
        user = users.get_by_email(credentials.email)
        if user is None:
            hasher.verify_dummy(credentials.password)
            return None
        return user if hasher.verify(user.password_hash, credentials.password) else None

    user = throttle.attempt(credentials.email, source_ip, now, check)
    if user is None:
        raise invalid_credentials()
    rehashed = hasher.needs_rehash(user.password_hash)
    if rehashed:
        users.update_password_hash(user.id, hasher.hash(credentials.password))
    return LoginResult(user=user, token=tokens.issue(str(user.id), user.email), rehashed=rehashed)



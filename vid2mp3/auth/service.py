"""Register, log in, change the password, confirm it: every dependency comes in as a parameter."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vid2mp3.auth.identity import Identity
from vid2mp3.auth.passwords import PasswordHasher
from vid2mp3.auth.throttle import LoginThrottle, ip_key
from vid2mp3.auth.tokens import IssuedToken, TokenService
from vid2mp3.auth.users import User, UserRepository
from vid2mp3.auth.validation import parse_login, parse_password_change, parse_registration
from vid2mp3.errors import TooManyRequests, Unauthorized
from vid2mp3.quotas import REGISTRATIONS, RateLimiter
from vid2mp3.quotas.service import HOUR_S, seconds_until_free


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
    return LoginResult(user=user, token=tokens.issue(str(user.id), user.email, user.token_version), rehashed=rehashed)


def admit_registration(rates: RateLimiter, source_ip: str | None, *, limit: int, now: datetime) -> None:
    """At most `limit` registrations per source address (IPv6: per /64) and hour; TooManyRequests after."""
    key = ip_key(source_ip).digest if source_ip else "unknown"
    full = rates.hit(REGISTRATIONS, key, limit, HOUR_S, now)
    if full is not None:
        wait = seconds_until_free(full, HOUR_S, now)
        raise TooManyRequests(wait, f"At most {limit} accounts may be created per hour from one address; try again "
                              f"in {wait} s.", code="registration_rate_exceeded")


def confirm_password(
    caller: Identity, password: str, *, source_ip: str | None, now: float, users: UserRepository,
    hasher: PasswordHasher, throttle: LoginThrottle,
) -> User:
    """The caller's account, once `password` is its password. A wrong one counts as a failed login (the
    same throttles: a stolen token must not become a way to guess the password)."""
    try:
        user_id = uuid.UUID(caller.user_id)
    except ValueError:
        raise Unauthorized() from None

    def check() -> User | None:
        user = users.get(user_id)
        if user is None:
            hasher.verify_dummy(password)
            return None
        return user if hasher.verify(user.password_hash, password) else None

    user = throttle.attempt(caller.email, source_ip, now, check)
    if user is None:
        raise Unauthorized("The password is incorrect.", code="invalid_credentials")
    return user


def change_password(
    caller: Identity, body: dict[str, Any], *, source_ip: str | None, now: float, users: UserRepository,
    hasher: PasswordHasher, throttle: LoginThrottle, tokens: TokenService,
) -> IssuedToken:
    """Set a new password (the current one required); every token issued before is refused from now on.
    Returns a token for the new version, so the client that changed it stays logged in."""
    current, new = parse_password_change(body)
    user = confirm_password(caller, current, source_ip=source_ip, now=now, users=users, hasher=hasher,
                            throttle=throttle)
    changed = users.change_password(user.id, hasher.hash(new))
    if changed is None:
        raise Unauthorized("This account no longer exists.", code="account_deleted")
    return tokens.issue(str(changed.id), changed.email, changed.token_version)



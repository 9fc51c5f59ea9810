"""register / login / me with in-memory fakes, and bootstrap_auth wiring (no network)."""

from __future__ import annotations

import time

import pytest

from vid2mp3.auth import service
from vid2mp3.auth.identity import Identity, identity_from_authorizer
from vid2mp3.auth.passwords import Argon2PasswordHasher
from vid2mp3.auth.throttle import InMemoryThrottleStore, LoginThrottle
from vid2mp3.auth.tokens import TokenService
from vid2mp3.auth.users import InMemoryUserRepository
from vid2mp3.bootstrap import AuthDeps, bootstrap_auth
from vid2mp3.errors import ConfigError, Conflict, InvalidInput, TooManyRequests, Unauthorized
from vid2mp3.settings import load_settings

KEY = "a-test-signing-key-of-32-bytes!!"
PASSWORD = "correct horse battery"
T0 = time.time()  # tokens are verified against the real time


class SpyHasher:
    """Cheap argon2id parameters (the real ones are tested in test_auth_passwords), counting calls."""

    def __init__(self, **params: int) -> None:
        self._real = Argon2PasswordHasher(**({"memory_cost_kib": 8, "time_cost": 1} | params))
        self.calls: list[str] = []

    def hash(self, password: str) -> str:
        self.calls.append("hash")
        return self._real.hash(password)

    def verify(self, stored_hash: str, password: str) -> bool:
        self.calls.append("verify")
        return self._real.verify(stored_hash, password)

    def verify_dummy(self, password: str) -> None:
        self.calls.append("verify")
        self._real.verify_dummy(password)

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._real.needs_rehash(stored_hash)


@pytest.fixture
def deps() -> AuthDeps:
    settings = load_settings({"JWT_SECRET": KEY, "JWT_TTL_SECONDS": "900"})
    return bootstrap_auth(
        settings,
        users=InMemoryUserRepository(),
        throttle=InMemoryThrottleStore(),
        hasher=SpyHasher(),
        clock=lambda: T0,
    )


def register(d: AuthDeps, email: str = "Alice@Example.com", password: str = PASSWORD):
    return service.register({"email": email, "password": password}, users=d.users, hasher=d.hasher)


def login(
    d: AuthDeps, email: str = "alice@example.com", password: str = PASSWORD, ip: str | None = "192.0.2.1"
):
    return service.login(
        {"email": email, "password": password},
        source_ip=ip,
        now=d.clock(),
        users=d.users,
        hasher=d.hasher,
        throttle=d.throttle,
        tokens=d.tokens,
    )


def test_register_stores_the_normalised_email_and_an_argon2id_hash(deps: AuthDeps) -> None:
    user = register(deps)
    assert user.email == "alice@example.com"
    stored = deps.users.get_by_email("alice@example.com")
    assert stored is not None and stored.id == user.id
    assert stored.password_hash.startswith("$argon2id$") and PASSWORD not in stored.password_hash
    assert PASSWORD not in repr(stored)


def test_register_twice_in_another_case_is_a_conflict(deps: AuthDeps) -> None:
    register(deps)
    with pytest.raises(Conflict) as info:
        register(deps, email="  ALICE@example.COM ")
    assert info.value.code == "email_taken"


def test_invalid_registration_stores_nothing(deps: AuthDeps) -> None:
    with pytest.raises(InvalidInput):
        register(deps, password="short")
    assert deps.users.get_by_email("alice@example.com") is None
    assert deps.hasher.calls == []  # type: ignore[attr-defined]


def test_login_issues_a_token_for_the_user(deps: AuthDeps) -> None:
    user = register(deps)
    result = login(deps, email=" ALICE@example.com")
    assert result.user.id == user.id and not result.rehashed
    assert result.token.expires_in == 900
    claims = deps.tokens.verify(result.token.token)
    assert (claims.user_id, claims.email) == (str(user.id), "alice@example.com")


def test_unknown_email_and_wrong_password_look_the_same(deps: AuthDeps) -> None:
    register(deps)
    deps.hasher.calls.clear()  # type: ignore[attr-defined]
    with pytest.raises(Unauthorized) as wrong:
        login(deps, password="not the password")
    assert deps.hasher.calls == ["verify"]  # type: ignore[attr-defined]
    with pytest.raises(Unauthorized) as unknown:
        login(deps, email="nobody@example.com")
    # one argon2 verification each (a dummy one for the unknown email): similar timing
    assert deps.hasher.calls == ["verify", "verify"]  # type: ignore[attr-defined]
    assert (wrong.value.code, wrong.value.message) == (unknown.value.code, unknown.value.message)
    assert wrong.value.code == "invalid_credentials"


def test_login_upgrades_a_hash_made_with_old_parameters(deps: AuthDeps) -> None:
    old = Argon2PasswordHasher(memory_cost_kib=16, time_cost=1)
    user = deps.users.add("bob@example.com", old.hash(PASSWORD))
    result = login(deps, email="bob@example.com")
    assert result.rehashed
    upgraded = deps.users.get(user.id)
    assert upgraded is not None and upgraded.password_hash != user.password_hash
    assert not deps.hasher.needs_rehash(upgraded.password_hash)
    assert not login(deps, email="bob@example.com").rehashed  # and it verifies with the new hash


def test_a_wrong_password_does_not_upgrade_the_hash(deps: AuthDeps) -> None:
    old_hash = Argon2PasswordHasher(memory_cost_kib=16, time_cost=1).hash(PASSWORD)
    user = deps.users.add("bob@example.com", old_hash)
    with pytest.raises(Unauthorized):
        login(deps, email="bob@example.com", password="wrong password")
    stored = deps.users.get(user.id)
    assert stored is not None and stored.password_hash == old_hash


def test_login_is_throttled_after_five_failures(deps: AuthDeps) -> None:
    register(deps)
    for _ in range(5):
        with pytest.raises(Unauthorized):
            login(deps, password="wrong password")
    with pytest.raises(TooManyRequests) as info:
        login(deps)
    assert info.value.retry_after == 60


def test_unknown_emails_are_throttled_like_known_ones(deps: AuthDeps) -> None:
    # Otherwise throttling would tell which emails have an account.
    for _ in range(5):
        with pytest.raises(Unauthorized):
            login(deps, email="nobody@example.com")
    with pytest.raises(TooManyRequests):
        login(deps, email="nobody@example.com")


def test_invalid_login_bodies(deps: AuthDeps) -> None:
    with pytest.raises(InvalidInput) as info:
        service.login(
            {"email": 1},
            source_ip=None,
            now=T0,
            users=deps.users,
            hasher=deps.hasher,
            throttle=deps.throttle,
            tokens=deps.tokens,
        )
    assert info.value.message == "email: must be a string; password: is required."


def test_identity_from_the_authorizer_context() -> None:
    identity = identity_from_authorizer(
        {"principalId": "u-1", "user_id": "u-1", "email": "a@example.com", "integrationLatency": 3}
    )
    assert identity == Identity(user_id="u-1", email="a@example.com")
    assert identity_from_authorizer({"principalId": "u-2", "email": "b@example.com"}).user_id == "u-2"


@pytest.mark.parametrize(
    "context", [None, {}, {"user_id": "u-1"}, {"email": "a@example.com"}, {"user_id": 5, "email": "x"}]
)
def test_no_identity_without_an_authorizer_context(context: dict[str, object] | None) -> None:
    with pytest.raises(Unauthorized):
        identity_from_authorizer(context)


def test_bootstrap_auth_refuses_to_start_without_a_jwt_secret() -> None:
    with pytest.raises(ConfigError) as info:
        bootstrap_auth(load_settings({}), users=InMemoryUserRepository(), throttle=InMemoryThrottleStore())
    assert info.value.variable == "JWT_SECRET"


def test_bootstrap_auth_defaults_and_overrides() -> None:
    settings = load_settings({"JWT_SECRET": KEY, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    production = bootstrap_auth(settings)  # adapters connect lazily: nothing is reached here
    assert type(production.users).__name__ == "PostgresUserRepository"
    assert type(production.throttle.store).__name__ == "PostgresThrottleStore"
    assert type(production.hasher).__name__ == "Argon2PasswordHasher"
    assert production.tokens.ttl_seconds == 3600
    ready = LoginThrottle(InMemoryThrottleStore())
    tokens = TokenService(KEY.encode())
    given = bootstrap_auth(settings, users=InMemoryUserRepository(), throttle=ready, tokens=tokens)
    assert given.throttle is ready and given.tokens is tokens

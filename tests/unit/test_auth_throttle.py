"""Login throttling logic with a fake clock and the in-memory store (no network)."""

from __future__ import annotations

import pytest

from vid2mp3.auth.throttle import (
    ACCOUNT_POLICY,
    IP_POLICY,
    InMemoryThrottleStore,
    LoginThrottle,
    ThrottlePolicy,
    ThrottleState,
    account_key,
    after_failure,
    ip_key,
)
from vid2mp3.errors import TooManyRequests

MINUTE = 60.0
T0 = 1_700_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Attempts:
    """Drives a LoginThrottle; `fail`/`succeed` return the seconds to wait when refused, else 0."""

    def __init__(self, throttle: LoginThrottle, clock: Clock) -> None:
        self.throttle, self.clock, self.checks = throttle, clock, 0

    def _run(self, email: str, ip: str | None, ok: bool) -> int:
        def check() -> str | None:
            self.checks += 1
            return "user" if ok else None

        try:
            self.throttle.attempt(email, ip, self.clock(), check)
        except TooManyRequests as exc:
            return exc.retry_after
        return 0

    def fail(self, email: str = "alice@example.com", ip: str | None = "198.51.100.7") -> int:
        return self._run(email, ip, ok=False)

    def succeed(self, email: str = "alice@example.com", ip: str | None = "198.51.100.7") -> int:
        return self._run(email, ip, ok=True)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> InMemoryThrottleStore:
    return InMemoryThrottleStore()


@pytest.fixture
def attempts(store: InMemoryThrottleStore, clock: Clock) -> Attempts:
    return Attempts(LoginThrottle(store), clock)


def test_policies() -> None:
    assert (ACCOUNT_POLICY.max_failures, ACCOUNT_POLICY.window_seconds) == (5, 900)
    assert ACCOUNT_POLICY.max_lockout_seconds == 900
    assert IP_POLICY.max_failures > ACCOUNT_POLICY.max_failures


@pytest.mark.parametrize(
    ("failures", "lockout"),
    [(1, 0), (4, 0), (5, 60), (6, 120), (7, 240), (8, 480), (9, 900), (10, 900), (500, 900)],
)
def test_lockout_grows_to_fifteen_minutes(failures: int, lockout: int) -> None:
    assert ACCOUNT_POLICY.lockout_seconds(failures) == lockout


def test_five_failures_lock_the_account(attempts: Attempts) -> None:
    assert [attempts.fail() for _ in range(5)] == [0, 0, 0, 0, 0]  # each of these got its 401
    assert attempts.checks == 5
    assert attempts.fail() == 60
    assert attempts.succeed() == 60  # even the right password is not checked while locked out
    assert attempts.checks == 5


def test_retry_after_counts_down_and_rounds_up(attempts: Attempts, clock: Clock) -> None:
    for _ in range(5):
        attempts.fail()
    clock.advance(0.5)
    assert attempts.fail() == 60
    clock.advance(30)
    assert attempts.fail() == 30
    clock.advance(29.4)
    assert attempts.fail() == 1
    clock.advance(0.1)
    assert attempts.fail() == 0  # the lockout is over: checked again, and failed again


def test_lockout_grows_with_each_further_failure_up_to_fifteen_minutes(
    attempts: Attempts, clock: Clock
) -> None:
    for _ in range(5):
        attempts.fail()
    waits = []
    for _ in range(6):
        wait = attempts.fail()
        waits.append(wait)
        clock.advance(wait)
        assert attempts.fail() == 0  # one more try once the wait is over, which fails again
    assert waits == [60, 120, 240, 480, 900, 900]


def test_failures_spread_beyond_the_window_are_forgotten(attempts: Attempts, clock: Clock) -> None:
    for _ in range(4):
        attempts.fail()
    clock.advance(15 * MINUTE)
    for _ in range(4):
        assert attempts.fail() == 0
    assert attempts.fail() == 0
    assert attempts.fail() == 60


def test_lockout_time_is_not_quiet_time(attempts: Attempts, clock: Clock) -> None:
    for _ in range(5):
        attempts.fail()
    for wait in (60, 120, 240):
        clock.advance(wait)
        assert attempts.fail() == 0  # the 6th, 7th, 8th failures, each right after a lockout
    # More than 15 minutes since the first failures, but the lockouts were not quiet time.
    assert attempts.fail() == 480
    clock.advance(480)
    assert attempts.fail() == 0
    assert attempts.fail() == 900
    clock.advance(900 + 15 * MINUTE)  # the lockout, then a full window of quiet: forgotten
    for _ in range(5):
        assert attempts.fail() == 0
    assert attempts.fail() == 60


def test_success_resets_the_account_counter(attempts: Attempts) -> None:
    for _ in range(4):
        attempts.fail()
    assert attempts.succeed() == 0
    for _ in range(4):
        assert attempts.fail() == 0
    assert attempts.fail() == 0
    assert attempts.fail() == 60


def test_accounts_are_throttled_independently(attempts: Attempts) -> None:
    for _ in range(5):
        attempts.fail("alice@example.com", ip=None)
    assert attempts.fail("alice@example.com", ip=None) == 60
    assert attempts.succeed("bob@example.com", ip=None) == 0


def test_one_ip_spraying_many_accounts_is_throttled(store: InMemoryThrottleStore, clock: Clock) -> None:
    attempts = Attempts(LoginThrottle(store, ip_policy=ThrottlePolicy(max_failures=3)), clock)
    for n in range(3):
        assert attempts.fail(f"user{n}@example.com", "203.0.113.9") == 0
    assert attempts.fail("user9@example.com", "203.0.113.9") == 60
    assert attempts.succeed("user9@example.com", "203.0.113.9") == 60
    assert attempts.succeed("user9@example.com", "203.0.113.10") == 0  # another address is not affected


def test_a_success_does_not_reset_the_ip_counter(store: InMemoryThrottleStore, clock: Clock) -> None:
    attempts = Attempts(LoginThrottle(store, ip_policy=ThrottlePolicy(max_failures=3)), clock)
    attempts.fail("a@example.com", "203.0.113.9")
    attempts.fail("b@example.com", "203.0.113.9")
    assert attempts.succeed("mine@example.com", "203.0.113.9") == 0
    attempts.fail("c@example.com", "203.0.113.9")
    assert attempts.succeed("mine@example.com", "203.0.113.9") == 60


def test_the_longer_wait_wins(store: InMemoryThrottleStore, clock: Clock) -> None:
    attempts = Attempts(LoginThrottle(store, ip_policy=ThrottlePolicy(max_failures=6)), clock)
    for _ in range(5):
        attempts.fail()
    clock.advance(60)
    attempts.fail()  # account: 6 failures -> 120 s; IP: 6 failures -> 60 s
    assert attempts.fail() == 120
    assert attempts.fail("someone.else@example.com") == 60


def test_without_a_source_ip_only_the_account_is_throttled(
    attempts: Attempts, store: InMemoryThrottleStore
) -> None:
    attempts.fail(ip=None)
    assert list(store.rows) == [account_key("alice@example.com")]


def test_keys_are_digests_and_ipv6_is_grouped_by_64() -> None:
    key = account_key("alice@example.com")
    assert key.scope == "account" and "alice" not in key.digest and len(key.digest) == 64
    assert ip_key("2001:db8:1:2::1") == ip_key("2001:db8:1:2:ffff::9")
    assert ip_key("2001:db8:1:3::1") != ip_key("2001:db8:1:2::1")
    assert ip_key("198.51.100.7") != ip_key("198.51.100.8")
    assert ip_key(" 198.51.100.7 ") == ip_key("198.51.100.7")
    assert ip_key("not an ip").scope == "ip"
    assert -(2**31) <= key.lock_id < 2**31


def test_nothing_is_recorded_when_the_check_fails(attempts: Attempts, store: InMemoryThrottleStore) -> None:
    def broken() -> None:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        attempts.throttle.attempt("alice@example.com", "198.51.100.7", T0, broken)
    assert store.rows == {}


def test_expired_counters_are_purged(attempts: Attempts, store: InMemoryThrottleStore, clock: Clock) -> None:
    attempts.fail("old@example.com")
    clock.advance(16 * MINUTE)
    attempts.fail("new@example.com")  # a failure purges what has expired
    assert account_key("old@example.com") not in store.rows
    assert account_key("new@example.com") in store.rows


def test_after_failure_is_pure() -> None:
    first = after_failure(None, T0, ACCOUNT_POLICY)
    assert first == ThrottleState(failures=1, last_failure=T0, blocked_until=None)
    assert first.retry_after(T0) == 0
    assert first.expires_at(ACCOUNT_POLICY) == T0 + 900
    state = first
    for _ in range(4):
        state = after_failure(state, T0 + 1, ACCOUNT_POLICY)
    assert state == ThrottleState(failures=5, last_failure=T0 + 1, blocked_until=T0 + 61)
    assert state.expires_at(ACCOUNT_POLICY) == T0 + 61 + 900

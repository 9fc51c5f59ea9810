"""Brute-force throttling of logins, per account and per source IP, with state that outlives an instance.

The rule (`ThrottlePolicy`, one per scope): failures are counted until 15 minutes pass without one
(time spent locked out does not count as quiet). From the 5th counted failure on, the key is locked
out for 1 minute, doubling with every further failure, to at most 15 minutes; a locked-out attempt
gets 429 with Retry-After and is not even checked. A successful login clears the account's counter,
not the IP's (one valid account must not let an IP go on guessing others' passwords).

While an attempt runs, its keys are locked (PostgreSQL transaction-level advisory locks), so
concurrent attempts on one account are counted one after the other and cannot all slip through the
check before the first failure is recorded.

Keys are stored as SHA-256 digests, not as addresses: the table holds no emails or IPs in clear.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from vid2mp3.db.postgres import Connection, Postgres
from vid2mp3.errors import TooManyRequests

ACCOUNT = "account"
IP = "ip"

T = TypeVar("T")


@dataclass(frozen=True)
class ThrottlePolicy:
    max_failures: int = 5
    window_seconds: int = 15 * 60
    base_lockout_seconds: int = 60
    max_lockout_seconds: int = 15 * 60

    def lockout_seconds(self, failures: int) -> int:
        """How long `failures` counted failures lock the key out (0 below the threshold)."""
        if failures < self.max_failures:
            return 0
        doublings = min(failures - self.max_failures, 32)
        return min(self.base_lockout_seconds << doublings, self.max_lockout_seconds)


ACCOUNT_POLICY = ThrottlePolicy()
# An IP is shared by every user behind one NAT or carrier-grade NAT, so its threshold is higher than
# an account's: it is there to stop one address from spraying guesses over many accounts.
IP_POLICY = ThrottlePolicy(max_failures=20)


@dataclass(frozen=True)
class ThrottleKey:
    scope: str
    digest: str  # hex SHA-256 of the scope and the value

    @classmethod
    def of(cls, scope: str, value: str) -> ThrottleKey:
        return cls(scope, hashlib.sha256(f"{scope}\x00{value}".encode()).hexdigest())

    @property
    def lock_id(self) -> int:
        """A signed 32-bit number for pg_advisory_xact_lock(namespace, id)."""
        return int(self.digest[:8], 16) - 2**31


def account_key(email: str) -> ThrottleKey:
    return ThrottleKey.of(ACCOUNT, email)


def ip_key(source_ip: str) -> ThrottleKey:
    """IPv6 addresses are grouped by /64: one host usually holds a whole /64."""
    try:
        address = ipaddress.ip_address(source_ip.strip())
    except ValueError:
        return ThrottleKey.of(IP, source_ip.strip())
    if address.version == 6:
        return ThrottleKey.of(IP, str(ipaddress.ip_network(f"{address}/64", strict=False)))
    return ThrottleKey.of(IP, str(address))


_NOISE_SECONDS = 1e-3


@dataclass(frozen=True)
class ThrottleState:
    failures: int
    last_failure: float  # epoch seconds
    blocked_until: float | None = None

    def retry_after(self, now: float) -> int:
        """Whole seconds until an attempt is allowed again; 0 when it is allowed now."""
        # Sub-millisecond differences are noise from stored timestamps (PostgreSQL keeps microseconds):
        # ignored, so that a fresh 60 s lockout reads 60, not 61, and is over after 60.
        remaining = (self.blocked_until or now) - now - _NOISE_SECONDS
        return math.ceil(remaining) if remaining > 0 else 0

    def expires_at(self, policy: ThrottlePolicy) -> float:
        """When the counter is forgotten: a window of quiet after the last failure or lockout."""
        return max(self.last_failure, self.blocked_until or 0.0) + policy.window_seconds


def after_failure(state: ThrottleState | None, now: float, policy: ThrottlePolicy) -> ThrottleState:
    failures = 1 if state is None or now >= state.expires_at(policy) else state.failures + 1
    lockout = policy.lockout_seconds(failures)
    blocked_until = now + lockout if lockout else None
    return ThrottleState(failures=failures, last_failure=now, blocked_until=blocked_until)


class ThrottleSession(Protocol):
    """Reads and writes of the keys locked by `ThrottleStore.session`."""

    def load(self, key: ThrottleKey) -> ThrottleState | None: ...

    def save(self, key: ThrottleKey, state: ThrottleState, expires_at: float) -> None: ...

    def clear(self, key: ThrottleKey) -> None: ...


class ThrottleStore(Protocol):
    """The port: where throttling state lives, shared by every instance of the function."""

    def session(self, keys: Sequence[ThrottleKey]) -> AbstractContextManager[ThrottleSession]:
        """Lock `keys` against concurrent attempts until the block ends; writes commit together."""
        ...

    def purge(self, now: float) -> int:
        """Forget counters that expired before `now`; returns how many."""
        ...


class LoginThrottle:
    """Applies the account and IP policies around one login attempt."""

    def __init__(
        self,
        store: ThrottleStore,
        *,
        account_policy: ThrottlePolicy = ACCOUNT_POLICY,
        ip_policy: ThrottlePolicy = IP_POLICY,
    ) -> None:
        self.store = store
        self._account_policy = account_policy
        self._ip_policy = ip_policy

    def attempt(
        self, email: str, source_ip: str | None, now: float, check: Callable[[], T | None]
    ) -> T | None:
        """Run `check` (None = the credentials were wrong) unless a key is locked out.

        Raises TooManyRequests with the longer of the waits when the account or the IP is locked out.
        """
        account = account_key(email)
        policies = {account: self._account_policy}
        if source_ip:
            policies[ip_key(source_ip)] = self._ip_policy
        with self.store.session(list(policies)) as session:
            states = {key: session.load(key) for key in policies}
            wait = max((s.retry_after(now) for s in states.values() if s is not None), default=0)
            if wait:
                raise TooManyRequests(wait, "Too many failed login attempts; try again later.")
            result = check()
            if result is None:
                for key, policy in policies.items():
                    state = after_failure(states[key], now, policy)
                    session.save(key, state, state.expires_at(policy))
            elif states[account] is not None:
                session.clear(account)
        if result is None:
            self.store.purge(now)
        return result


def _ts(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None


# First key of pg_advisory_xact_lock(int, int): "auth", so no other lock of the project collides.
_LOCK_NAMESPACE = 0x61757468


class _PostgresSession:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def load(self, key: ThrottleKey) -> ThrottleState | None:
        row = self._conn.execute(
            "SELECT failures, last_failure_at, blocked_until FROM login_throttle"
            " WHERE scope = %s AND key = %s",
            (key.scope, key.digest),
        ).fetchone()
        if row is None:
            return None
        failures, last, blocked = row["failures"], row["last_failure_at"], row["blocked_until"]
        if not (isinstance(failures, int) and isinstance(last, datetime)):
            raise TypeError("unexpected row shape from the login_throttle table")
        return ThrottleState(
            failures=failures,
            last_failure=last.timestamp(),
            blocked_until=blocked.timestamp() if isinstance(blocked, datetime) else None,
        )

    def save(self, key: ThrottleKey, state: ThrottleState, expires_at: float) -> None:
        self._conn.execute(
            """INSERT INTO login_throttle (scope, key, failures, last_failure_at, blocked_until, expires_at)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (scope, key) DO UPDATE SET
                   failures = EXCLUDED.failures,
                   last_failure_at = EXCLUDED.last_failure_at,
                   blocked_until = EXCLUDED.blocked_until,
                   expires_at = EXCLUDED.expires_at""",
            (
                key.scope,
                key.digest,
                state.failures,
                _ts(state.last_failure),
                _ts(state.blocked_until),
                _ts(expires_at),
            ),
        )

    def clear(self, key: ThrottleKey) -> None:
        self._conn.execute(
            "DELETE FROM login_throttle WHERE scope = %s AND key = %s", (key.scope, key.digest)
        )


class PostgresThrottleStore:
    def __init__(self, db: Postgres) -> None:
        self._db = db

    @contextmanager
    def session(self, keys: Sequence[ThrottleKey]) -> Iterator[ThrottleSession]:
        with self._db.transaction() as conn:
            # Always in the same order, so two attempts sharing keys cannot deadlock.
            for key in sorted(set(keys), key=lambda k: (k.scope, k.digest)):
                conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_NAMESPACE, key.lock_id))
            yield _PostgresSession(conn)

    def purge(self, now: float) -> int:
        with self._db.transaction() as conn:
            return conn.execute("DELETE FROM login_throttle WHERE expires_at < %s", (_ts(now),)).rowcount


class _MemorySession:
    def __init__(self, rows: dict[ThrottleKey, tuple[ThrottleState, float]]) -> None:
        self._rows = rows

    def load(self, key: ThrottleKey) -> ThrottleState | None:
        row = self._rows.get(key)
        return row[0] if row is not None else None

    def save(self, key: ThrottleKey, state: ThrottleState, expires_at: float) -> None:
        self._rows[key] = (state, expires_at)

    def clear(self, key: ThrottleKey) -> None:
        self._rows.pop(key, None)


class InMemoryThrottleStore:
    """The fake: one lock for every key; writes are applied only when the session ends without error."""

    def __init__(self) -> None:
        self.rows: dict[ThrottleKey, tuple[ThrottleState, float]] = {}
        self._lock = threading.RLock()

    @contextmanager
    def session(self, keys: Sequence[ThrottleKey]) -> Iterator[ThrottleSession]:
        with self._lock:
            draft = dict(self.rows)
            yield _MemorySession(draft)
            self.rows = draft

    def purge(self, now: float) -> int:
        with self._lock:
            expired = [key for key, (_, expires_at) in self.rows.items() if expires_at < now]
            for key in expired:
                del self.rows[key]
            return len(expired)

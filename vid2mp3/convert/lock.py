"""One conversion per job at a time, across workers: a concurrent duplicate delivery waits its turn.

Two deliveries of the same message can run at once (a redelivery while the first worker still runs,
a re-driven message). Converting twice would waste a worker, and two GridFS uploads under the same
id would corrupt each other (the loser's abort deletes the chunks by id, the winner's too). So the
conversion holds a lock named after the job; the duplicate waits, then finds the job done and skips.

On PostgreSQL it is a session advisory lock on a connection of its own: the server releases it when
that connection closes, so a worker that is SIGKILLed or times out never leaves it held.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import psycopg
import psycopg.errors

from vid2mp3.convert.failures import LockBusy
from vid2mp3.errors import DependencyUnavailable

_NAMESPACE = "vid2mp3.convert:"


class JobLock(Protocol):
    def hold(self, job_id: str, wait_s: float) -> AbstractContextManager[None]:
        """Hold the job's lock for the `with` block, waiting at most `wait_s` for another holder.

        Raises LockBusy when the wait times out, DependencyUnavailable when the lock store is down.
        """


class PostgresJobLock:
    def __init__(self, url: str, *, connect_timeout: int = 5) -> None:
        self._url = url
        self._timeout = connect_timeout

    @contextmanager
    def hold(self, job_id: str, wait_s: float) -> Iterator[None]:
        try:
            conn = psycopg.connect(self._url, autocommit=True, connect_timeout=self._timeout,
                                   application_name="vid2mp3-convert-lock")
        except psycopg.OperationalError as exc:
            raise DependencyUnavailable("The database is unavailable.") from exc
        try:
            try:
                conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{max(1, int(wait_s * 1000))}ms",))
                conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (_NAMESPACE + job_id,))
            except psycopg.errors.LockNotAvailable:
                raise LockBusy(f"another worker has held job {job_id} for over {wait_s:.0f} s") from None
            except psycopg.OperationalError as exc:
                raise DependencyUnavailable("The database is unavailable.") from exc
            yield
        finally:
            conn.close()  # closing the session releases the lock


@dataclass
class InMemoryJobLock:
    """The same semantics inside one process (unit tests)."""

    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)
    available: bool = True

    @contextmanager
    def hold(self, job_id: str, wait_s: float) -> Iterator[None]:
        if not self.available:
            raise DependencyUnavailable("The database is unavailable.")
        with self._guard:
            lock = self._locks.setdefault(job_id, threading.Lock())
        if not lock.acquire(timeout=max(0.0, wait_s)):
            raise LockBusy(f"another worker has held job {job_id} for over {wait_s:.0f} s")
        try:
            yield
        finally:
            lock.release()

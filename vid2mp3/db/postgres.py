"""PostgreSQL adapter (psycopg 3): one connection per cold start, reopened when it broke."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psycopg
from psycopg.rows import dict_row

from vid2mp3.errors import DependencyUnavailable

Connection = psycopg.Connection[dict[str, object]]


class Postgres:
    def __init__(self, url: str, *, connect_timeout: int = 5) -> None:
        self._url = url
        self._timeout = connect_timeout
        self._conn: Connection | None = None
        self._lock = threading.RLock()

    def _connect(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                self._conn = psycopg.connect(
                    self._url, connect_timeout=self._timeout, row_factory=dict_row, application_name="vid2mp3"
                )
            except psycopg.OperationalError as exc:
                raise DependencyUnavailable("The database is unavailable.") from exc
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection inside one transaction: committed on success, rolled back on error."""
        with self._lock:
            conn = self._connect()
            try:
                with conn.transaction():
                    yield conn
            except psycopg.OperationalError as exc:
                self.close()
                raise DependencyUnavailable("The database is unavailable.") from exc

    def ping(self) -> None:
        with self.transaction() as conn:
            conn.execute("SELECT 1")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with suppress(psycopg.Error):
                    self._conn.close()
            self._conn = None

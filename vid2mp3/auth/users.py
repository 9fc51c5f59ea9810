"""User accounts: the UserRepository port, its PostgreSQL adapter and an in-memory fake.

Emails arrive normalised (vid2mp3.auth.validation.normalise_email); the database also enforces
uniqueness on lower(email), so two case variants can never both exist.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from vid2mp3.db.postgres import Postgres
from vid2mp3.errors import Conflict


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str
    password_hash: str = field(repr=False)
    created_at: datetime


def email_taken() -> Conflict:
    return Conflict("An account with this email already exists.", code="email_taken")


class UserRepository(Protocol):
    def add(self, email: str, password_hash: str) -> User:
        """Create an account; Conflict `email_taken` when the email (case-insensitively) exists."""
        ...

    def get_by_email(self, email: str) -> User | None: ...

    def get(self, user_id: uuid.UUID) -> User | None: ...

    def update_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None: ...


_COLUMNS = "id, email, password_hash, created_at"


def _user(row: dict[str, object]) -> User:
    user_id, created_at = row["id"], row["created_at"]
    if not (isinstance(user_id, uuid.UUID) and isinstance(created_at, datetime)):
        raise TypeError("unexpected row shape from the users table")
    return User(
        id=user_id, email=str(row["email"]), password_hash=str(row["password_hash"]), created_at=created_at
    )


class PostgresUserRepository:
    def __init__(self, db: Postgres) -> None:
        self._db = db

    def add(self, email: str, password_hash: str) -> User:
        with self._db.transaction() as conn:
            # ON CONFLICT without a target covers the unique index on lower(email), race-free.
            row = conn.execute(
                f"INSERT INTO users (email, password_hash) VALUES (%s, %s) "  # noqa: S608 - constant columns
                f"ON CONFLICT DO NOTHING RETURNING {_COLUMNS}",
                (email, password_hash),
            ).fetchone()
        if row is None:
            raise email_taken()
        return _user(row)

    def get_by_email(self, email: str) -> User | None:
        with self._db.transaction() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM users WHERE lower(email) = lower(%s)",  # noqa: S608
                (email,),
            ).fetchone()
        return _user(row) if row is not None else None

    def get(self, user_id: uuid.UUID) -> User | None:
        with self._db.transaction() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM users WHERE id = %s", (user_id,)).fetchone()  # noqa: S608
        return _user(row) if row is not None else None

    def update_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("UPDATE users SET password_hash = %s WHERE id = %s", (password_hash, user_id))


class InMemoryUserRepository:
    """The fake: the same contract, in a dict keyed by the lowercased email."""

    def __init__(self) -> None:
        self._by_email: dict[str, User] = {}
        self._lock = threading.Lock()

    def add(self, email: str, password_hash: str) -> User:
        with self._lock:
            if email.lower() in self._by_email:
                raise email_taken()
            now = datetime.now(UTC)
            user = User(id=uuid.uuid4(), email=email, password_hash=password_hash, created_at=now)
            self._by_email[email.lower()] = user
            return user

    def get_by_email(self, email: str) -> User | None:
        return self._by_email.get(email.lower())

    def get(self, user_id: uuid.UUID) -> User | None:
        return next((u for u in self._by_email.values() if u.id == user_id), None)

    def update_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None:
        with self._lock:
            for key, user in self._by_email.items():
                if user.id == user_id:
                    self._by_email[key] = User(user.id, user.email, password_hash, user.created_at)

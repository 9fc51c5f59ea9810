"""User accounts: the UserRepository port, its PostgreSQL adapter and an in-memory fake.

Emails arrive normalised (vid2mp3.auth.validation.normalise_email); the database also enforces
uniqueness on lower(email), so two case variants can never both exist.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from vid2mp3.db.postgres import Postgres
from vid2mp3.errors import Conflict
from vid2mp3.webhooks.signing import new_secret


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str
    password_hash: str = field(repr=False)
    created_at: datetime
    # Bumped by a password change: tokens issued under an older version are refused.
    token_version: int = 0
    # The key of the account's webhook signatures (GET /auth/me shows it; rotatable).
    webhook_secret: str = field(default="", repr=False)


def email_taken() -> Conflict:
    return Conflict("An account with this email already exists.", code="email_taken")


class UserRepository(Protocol):
    def add(self, email: str, password_hash: str) -> User:
        """Create an account; Conflict `email_taken` when the email (case-insensitively) exists."""
        ...

    def get_by_email(self, email: str) -> User | None: ...

    def get(self, user_id: uuid.UUID) -> User | None: ...

    def update_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None: ...

    # --- the account's lifecycle (issue 13) ----------------------------------------------------------

    def change_password(self, user_id: uuid.UUID, password_hash: str) -> User | None:
        """Store a new password and bump the token version (every earlier token is refused from now on)."""

    def rotate_webhook_secret(self, user_id: uuid.UUID, secret: str) -> User | None: ...

    def delete(self, user_id: uuid.UUID) -> bool:
        """Remove the account; False when there was none."""

    def token_version(self, user_id: str) -> int | None:
        """The account's token version; None when there is no such account (deleted)."""


_COLUMNS = "id, email, password_hash, created_at, token_version, webhook_secret"


def _user(row: dict[str, object]) -> User:
    user_id, created_at = row["id"], row["created_at"]
    if not (isinstance(user_id, uuid.UUID) and isinstance(created_at, datetime)):
        raise TypeError("unexpected row shape from the users table")
    return User(
        id=user_id, email=str(row["email"]), password_hash=str(row["password_hash"]), created_at=created_at,
        token_version=int(row["token_version"]), webhook_secret=str(row["webhook_secret"]),  # type: ignore[call-overload]
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

    def _update(self, assignments: str, params: tuple[object, ...]) -> User | None:
        with self._db.transaction() as conn:
            row = conn.execute(f"UPDATE users SET {assignments} WHERE id = %s RETURNING {_COLUMNS}",  # noqa: S608
                               params).fetchone()
        return _user(row) if row is not None else None

    def change_password(self, user_id: uuid.UUID, password_hash: str) -> User | None:
        return self._update("password_hash = %s, token_version = token_version + 1", (password_hash, user_id))

    def rotate_webhook_secret(self, user_id: uuid.UUID, secret: str) -> User | None:
        return self._update("webhook_secret = %s", (secret, user_id))

    def delete(self, user_id: uuid.UUID) -> bool:
        with self._db.transaction() as conn:
            return conn.execute("DELETE FROM users WHERE id = %s", (user_id,)).rowcount > 0

    def token_version(self, user_id: str) -> int | None:
        try:
            uid = uuid.UUID(user_id)
        except ValueError:
            return None
        with self._db.transaction() as conn:
            row = conn.execute("SELECT token_version FROM users WHERE id = %s", (uid,)).fetchone()
        return None if row is None else int(row["token_version"])  # type: ignore[call-overload]


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
            user = User(id=uuid.uuid4(), email=email, password_hash=password_hash, created_at=now,
                        webhook_secret=new_secret())
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
                    self._by_email[key] = replace(user, password_hash=password_hash)

    def _replace(self, user_id: uuid.UUID, **changes: object) -> User | None:
        with self._lock:
            for key, user in self._by_email.items():
                if user.id == user_id:
                    self._by_email[key] = replace(user, **changes)  # type: ignore[arg-type]
                    return self._by_email[key]
            return None

    def change_password(self, user_id: uuid.UUID, password_hash: str) -> User | None:
        user = self.get(user_id)
        if user is None:
            return None
        return self._replace(user_id, password_hash=password_hash, token_version=user.token_version + 1)

    def rotate_webhook_secret(self, user_id: uuid.UUID, secret: str) -> User | None:
        return self._replace(user_id, webhook_secret=secret)

    def delete(self, user_id: uuid.UUID) -> bool:
        with self._lock:
            key = next((k for k, u in self._by_email.items() if u.id == user_id), None)
            return key is not None and self._by_email.pop(key) is not None

    def token_version(self, user_id: str) -> int | None:
        try:
            user = self.get(uuid.UUID(user_id))
        except ValueError:
            return None
        return None if user is None else user.token_version

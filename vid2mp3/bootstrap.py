"""Build every dependency once per cold start; each can be handed in (a fake, in tests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vid2mp3.db.postgres import Postgres
from vid2mp3.objectstore import ObjectStore
from vid2mp3.queue import Publisher
from vid2mp3.settings import Settings, load_settings


@dataclass(frozen=True)
class Deps:
    settings: Settings
    db: Postgres
    store: ObjectStore
    publisher: Publisher


def bootstrap(
    settings: Settings | None = None,
    *,
    db: Postgres | None = None,
    store: ObjectStore | None = None,
    publisher: Publisher | None = None,
) -> Deps:
    """Production defaults for whatever is not given. Adapters connect lazily, on first use."""
    settings = settings or load_settings()
    if store is None:
        from vid2mp3.objectstore.gridfs import GridFSStore

        store = GridFSStore(settings.mongodb_uri, settings.mongodb_database)
    if publisher is None:
        from vid2mp3.queue.rabbitmq import RabbitMQPublisher

        publisher = RabbitMQPublisher(settings.rabbitmq_url)
    return Deps(settings=settings, db=db or Postgres(settings.database_url), store=store, publisher=publisher)


# --- auth function ---------------------------------------------------------------------------------

if TYPE_CHECKING:
    from collections.abc import Callable

    from vid2mp3.auth.passwords import PasswordHasher
    from vid2mp3.auth.throttle import LoginThrottle, ThrottleStore
    from vid2mp3.auth.tokens import TokenService
    from vid2mp3.auth.users import UserRepository


@dataclass(frozen=True)
class AuthDeps:
    settings: Settings
    users: UserRepository
    throttle: LoginThrottle
    hasher: PasswordHasher
    tokens: TokenService
    clock: Callable[[], float]


def bootstrap_auth(
    settings: Settings | None = None,
    *,
    db: Postgres | None = None,
    users: UserRepository | None = None,
    throttle: ThrottleStore | LoginThrottle | None = None,
    hasher: PasswordHasher | None = None,
    tokens: TokenService | None = None,
    clock: Callable[[], float] | None = None,
) -> AuthDeps:
    """The auth function's dependencies; production defaults (PostgreSQL, argon2id) for what is not given.

    Refuses to start (ConfigError) without a JWT_SECRET of at least 32 bytes. `throttle` is a store
    (wrapped with the default policies) or a ready LoginThrottle.
    """
    import time

    from vid2mp3.auth.passwords import Argon2PasswordHasher
    from vid2mp3.auth.throttle import LoginThrottle, PostgresThrottleStore
    from vid2mp3.auth.tokens import TokenService
    from vid2mp3.auth.users import PostgresUserRepository

    settings = settings or load_settings()
    clock = clock or time.time
    tokens = tokens or TokenService.from_settings(settings, clock=clock)
    if users is None or throttle is None:
        db = db or Postgres(settings.database_url)  # connects lazily, on the first query
        users = users or PostgresUserRepository(db)
        throttle = throttle or PostgresThrottleStore(db)
    if not isinstance(throttle, LoginThrottle):
        throttle = LoginThrottle(throttle)
    return AuthDeps(
        settings=settings,
        users=users,
        throttle=throttle,
        hasher=hasher or Argon2PasswordHasher(),
        tokens=tokens,
        clock=clock,
    )

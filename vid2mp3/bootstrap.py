"""Build every dependency once per cold start; each can be handed in (a fake, in tests).

`bootstrap` builds the shared adapters; `bootstrap_auth`, `bootstrap_upload`, `bootstrap_convert` and
`bootstrap_notify` build what each function needs on top, with a production default for everything
not given. Function entry points call one of these on their first event, never at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from vid2mp3.db.postgres import Postgres
from vid2mp3.errors import DependencyUnavailable
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
    from collections.abc import Callable, Mapping

    from vid2mp3.auth.passwords import PasswordHasher
    from vid2mp3.auth.throttle import LoginThrottle, ThrottleStore
    from vid2mp3.auth.tokens import TokenService
    from vid2mp3.auth.users import UserRepository
    from vid2mp3.quotas import RateLimiter


@dataclass(frozen=True)
class AuthDeps:
    settings: Settings
    users: UserRepository
    throttle: LoginThrottle
    hasher: PasswordHasher
    tokens: TokenService
    clock: Callable[[], float]
    # Registrations per source address (vid2mp3.quotas); None: not limited (unit tests of other rules).
    rates: RateLimiter | None = None
    db: Postgres | None = None  # the function's one connection, for what is built later (accounts)


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
    from vid2mp3.quotas.postgres import PostgresRateLimiter

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
        rates=PostgresRateLimiter(db) if db is not None else None,
        db=db,
    )


def bootstrap_accounts(auth: AuthDeps, *, logger: Logger, deps: Deps | None = None) -> AccountDeps:
    """GET/DELETE /auth/me on top of the auth function's dependencies (its PostgreSQL connection); the
    object stores that deleting an account empties are built on the first DELETE."""
    import functools

    from vid2mp3.accounts import AccountDeps
    from vid2mp3.quotas.postgres import PostgresRateLimiter, PostgresUsageStore
    from vid2mp3.quotas.service import Quotas
    from vid2mp3.webhooks.records import PostgresDeliveryLog

    db = auth.db or Postgres(auth.settings.database_url)

    @functools.cache
    def uploads() -> UploadsDeps:
        shared = deps or bootstrap(auth.settings, db=db)
        return bootstrap_uploads(bootstrap_upload(shared, logger=logger), db=db)

    quotas = Quotas(auth.settings, PostgresUsageStore(db), auth.rates or PostgresRateLimiter(db))
    return AccountDeps(users=auth.users, hasher=auth.hasher, throttle=auth.throttle, quotas=quotas,
                       webhooks=PostgresDeliveryLog(db), uploads=uploads, clock=auth.clock)


# --- upload function (and its scheduled re-drive) --------------------------------------------------

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path
    from typing import Any

    from aws_lambda_powertools import Logger

    from vid2mp3.accounts import AccountDeps
    from vid2mp3.auth.identity import Identity
    from vid2mp3.convert.lock import JobLock
    from vid2mp3.convert.service import Converter
    from vid2mp3.exports import Exporter
    from vid2mp3.jobs import JobRepository
    from vid2mp3.jobs.service import JobsDeps
    from vid2mp3.mail import Mailer
    from vid2mp3.notify.records import NotificationLog
    from vid2mp3.notify.service import NotifyDeps
    from vid2mp3.uploads import UploadRepository
    from vid2mp3.uploads.service import UploadsDeps
    from vid2mp3.webhooks.service import WebhookDeps


def bootstrap_upload(
    deps: Deps | None = None,
    *,
    logger: Logger,
    jobs: JobRepository | None = None,
    ffprobe: str | None = None,
    clock: Callable[[], datetime] | None = None,
    exporter: Exporter | None = None,
) -> JobsDeps:
    """The upload function's dependencies on top of the shared ones; PostgreSQL jobs unless given."""
    from vid2mp3.auth.users import PostgresUserRepository
    from vid2mp3.jobs.postgres import PostgresJobRepository
    from vid2mp3.jobs.service import JobsDeps, media_prober
    from vid2mp3.quotas.postgres import PostgresRateLimiter, PostgresUsageStore
    from vid2mp3.quotas.service import Quotas
    from vid2mp3.webhooks.records import PostgresDeliveryLog

    deps = deps or bootstrap()
    settings = deps.settings
    if exporter is None and settings.export_bucket:
        from vid2mp3.exports.s3 import S3Exporter

        exporter = S3Exporter(settings.export_bucket, endpoint_url=settings.aws_endpoint_url,
                              public_endpoint_url=settings.export_public_endpoint_url,
                              url_ttl_s=settings.export_url_ttl_seconds)
    built = JobsDeps(settings=settings,
                     jobs=jobs or PostgresJobRepository(deps.db, retention_s=settings.retention_seconds),
                     store=deps.store, publisher=deps.publisher, logger=logger, probe=media_prober(settings, ffprobe),
                     exporter=exporter,
                     quotas=Quotas(settings, PostgresUsageStore(deps.db), PostgresRateLimiter(deps.db)),
                     webhooks=PostgresDeliveryLog(deps.db), sessions=PostgresUserRepository(deps.db))
    return built if clock is None else replace(built, clock=clock)


def bootstrap_uploads(jobs: JobsDeps, *, db: Postgres | None = None, uploads: UploadRepository | None = None
                      ) -> UploadsDeps:
    """The resumable uploads' dependencies on top of the upload function's: uploads in PostgreSQL (on
    `db`, the function's one connection) unless given."""
    from vid2mp3.uploads.service import UploadsDeps

    if uploads is None:
        from vid2mp3.uploads.postgres import PostgresUploadRepository

        uploads = PostgresUploadRepository(db or Postgres(jobs.settings.database_url))
    return UploadsDeps(jobs=jobs, uploads=uploads)


class UploadWiring:
    """What the upload and videos functions build on the first request of a cold start and reuse: the
    shared adapters (`shared`), the jobs' dependencies (`jobs`) and the resumable uploads' (`uploads`).
    Tests hand in fakes by setting these attributes."""

    def __init__(self, logger: Logger) -> None:
        self.logger = logger
        self.shared: Deps | None = None
        self.jobs: JobsDeps | None = None
        self.uploads: UploadsDeps | None = None

    def deps(self) -> Deps:
        if self.shared is None:
            self.shared = bootstrap()
        return self.shared

    def jobs_deps(self) -> JobsDeps:
        if self.jobs is None:
            self.jobs = bootstrap_upload(self.deps(), logger=self.logger)
        return self.jobs

    def uploads_deps(self) -> UploadsDeps:
        if self.uploads is None:
            self.uploads = bootstrap_uploads(self.jobs_deps(), db=self.deps().db)
        return self.uploads

    def caller(self, authorizer: Mapping[str, Any] | None) -> Identity:
        """The caller the authorizer's context names, whose token must still be good: the gateway may
        replay a cached Allow for a minute, but a token revoked by a password change or the account's
        deletion is refused at once here."""
        from vid2mp3.auth.identity import check_session, identity_from_authorizer

        identity = identity_from_authorizer(authorizer)
        sessions = self.jobs_deps().sessions
        return identity if sessions is None else check_session(identity, sessions)

    def prepare(self) -> None:
        """For the warm-up: build everything and connect now, so the first request finds it ready."""
        shared = self.deps()
        self.jobs_deps()
        for ping in (shared.db.ping, shared.store.ping):
            try:
                ping()
            except DependencyUnavailable:  # the first request will say so; the warm-up is only a head start
                self.logger.warning("a backing service did not answer the warm-up")


# --- convert function ------------------------------------------------------------------------------


def bootstrap_convert(
    settings: Settings | None = None,
    *,
    deps: Deps | None = None,
    jobs: JobRepository | None = None,
    lock: JobLock | None = None,
    work_root: Path | None = None,
    logger: Any = None,
    delivery_limit: int | None = None,
) -> Converter:
    """Production defaults (PostgreSQL, GridFS, RabbitMQ, the layer's ffmpeg) for what is not given.

    A missing ffmpeg/ffprobe raises FileNotFoundError naming where it looked: a deployment fault.
    """
    import os
    import tempfile
    from pathlib import Path

    from vid2mp3.convert.lock import PostgresJobLock
    from vid2mp3.convert.service import Converter
    from vid2mp3.jobs.postgres import PostgresJobRepository
    from vid2mp3.media.binaries import find_ffmpeg, find_ffprobe
    from vid2mp3.queue.topology import DEFAULT_DELIVERY_LIMIT

    deps = deps or bootstrap(settings)
    settings = deps.settings
    from vid2mp3.convert.metrics import EmfMetrics

    converter = Converter(
        jobs=jobs or PostgresJobRepository(deps.db, retention_s=settings.retention_seconds),
        store=deps.store,
        publisher=deps.publisher,
        lock=lock or PostgresJobLock(settings.database_url),
        ffmpeg=find_ffmpeg(settings.ffmpeg_path, os.environ),
        ffprobe=find_ffprobe(settings.ffprobe_path, os.environ),
        work_root=work_root or Path(tempfile.gettempdir()),
        max_duration_s=float(settings.max_duration_seconds),
        delivery_limit=delivery_limit or DEFAULT_DELIVERY_LIMIT,
        keep_source=settings.keep_source,
        metrics=EmfMetrics(),
    )
    if logger is not None:
        converter.logger = logger
    return converter


# --- notify function -------------------------------------------------------------------------------


def bootstrap_notify(
    settings: Settings | None = None,
    *,
    db: Postgres | None = None,
    records: NotificationLog | None = None,
    mailer: Mailer | None = None,
    clock: Callable[[], datetime] | None = None,
) -> NotifyDeps:
    """The notify function's dependencies; production defaults (PostgreSQL, SMTP) for what is not given."""
    from datetime import UTC, datetime

    from vid2mp3.mail.smtp import SmtpMailer
    from vid2mp3.notify.records import PostgresNotificationLog
    from vid2mp3.notify.service import NotifyDeps

    settings = settings or load_settings()
    return NotifyDeps(
        settings=settings,
        records=records or PostgresNotificationLog(db or Postgres(settings.database_url)),  # lazy connect
        mailer=mailer or SmtpMailer.from_settings(settings),
        clock=clock or (lambda: datetime.now(UTC)),
    )


# --- webhook function ------------------------------------------------------------------------------


def bootstrap_webhook(settings: Settings | None = None, *, db: Postgres | None = None) -> WebhookDeps:
    """The webhook function's dependencies: PostgreSQL (jobs, accounts, delivery records) and urllib3."""
    import uuid

    from vid2mp3.auth.users import PostgresUserRepository
    from vid2mp3.jobs.postgres import PostgresJobRepository
    from vid2mp3.webhooks.records import PostgresDeliveryLog
    from vid2mp3.webhooks.service import WebhookDeps
    from vid2mp3.webhooks.targets import parse_allowed_hosts
    from vid2mp3.webhooks.transport import Urllib3Transport

    settings = settings or load_settings()
    db = db or Postgres(settings.database_url)
    users = PostgresUserRepository(db)

    def secret(owner_id: str) -> str | None:
        user = users.get(uuid.UUID(owner_id))
        return user.webhook_secret if user is not None else None

    return WebhookDeps(jobs=PostgresJobRepository(db, retention_s=settings.retention_seconds), secrets=secret,
                       log=PostgresDeliveryLog(db), transport=Urllib3Transport(),
                       allowed=parse_allowed_hosts(settings.webhook_allowed_hosts))

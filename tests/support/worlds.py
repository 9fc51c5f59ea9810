"""In-memory worlds for unit tests of the public-service rules: the account's dependencies (users,
quotas, jobs, uploads, stores) built from fakes that share their state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from tests.support.apigw import fake_probe
from vid2mp3.accounts import AccountDeps
from vid2mp3.bootstrap import AuthDeps
from vid2mp3.exports.memory import InMemoryExporter
from vid2mp3.jobs import service
from vid2mp3.jobs.memory import InMemoryJobRepository
from vid2mp3.objectstore.memory import InMemoryObjectStore
from vid2mp3.queue.memory import InMemoryPublisher
from vid2mp3.quotas.memory import InMemoryRateLimiter, InMemoryUsageStore
from vid2mp3.quotas.service import Quotas
from vid2mp3.settings import Settings
from vid2mp3.uploads.memory import InMemoryUploadRepository
from vid2mp3.uploads.service import UploadsDeps
from vid2mp3.webhooks.memory import MemoryDeliveryLog


class Clock:
    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    settings: Settings
    clock: Clock = field(default_factory=Clock)
    logger: Logger = field(default_factory=lambda: Logger(service="test"))

    def __post_init__(self) -> None:
        self.jobs = InMemoryJobRepository(clock=self.clock, retention_s=self.settings.retention_seconds)
        self.uploads = InMemoryUploadRepository(clock=self.clock)
        self.store = InMemoryObjectStore()
        self.publisher = InMemoryPublisher()
        self.exporter = InMemoryExporter()
        self.rates = InMemoryRateLimiter()
        self.webhooks = MemoryDeliveryLog(clock=self.clock)
        self.quotas = Quotas(self.settings, InMemoryUsageStore(self.jobs, self.uploads), self.rates, clock=self.clock)
        self.jobs_deps = service.JobsDeps(
            settings=self.settings, jobs=self.jobs, store=self.store, publisher=self.publisher, logger=self.logger,
            probe=fake_probe, clock=self.clock, exporter=self.exporter, quotas=self.quotas,
            webhooks=self.webhooks, resolver=lambda host, port: ["93.184.215.14"])
        self.uploads_deps = UploadsDeps(jobs=self.jobs_deps, uploads=self.uploads)

    def accounts(self, auth: AuthDeps, **overrides: Any) -> AccountDeps:
        return AccountDeps(users=auth.users, hasher=auth.hasher, throttle=auth.throttle, quotas=self.quotas,
                           webhooks=self.webhooks, uploads=lambda: self.uploads_deps, clock=auth.clock, **overrides)

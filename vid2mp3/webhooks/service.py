"""Deliver one job's outcome to its callback URL, exactly once per job and outcome; re-drive due retries.

For a message on `webhook_queue` ({"job_id", "kind"}):

1. the job must still be there (not deleted, not expired), finished with that outcome, with a callback
   URL, and its owner must still exist (the signing secret is theirs); otherwise nothing is sent;
2. claim the (job, outcome) record: 'delivered' or 'failed' already, or its next try not yet due: nothing;
3. check the URL again (its addresses now, SSRF rules), sign the body, POST it. A 2xx marks it
   'delivered'. A 5xx, a 429, a timeout or no answer is retried after RETRY_DELAYS_S, up to MAX_ATTEMPTS
   tries, then 'failed'; any other answer (4xx, a redirect) or a forbidden address is final: 'failed'.

The one duplicate left is the one HTTP cannot exclude: the receiver took it but the answer, or our
commit, was lost. The retry carries the same event id (`id` in the body, header Vid2mp3-Event-Id).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from vid2mp3.jobs import Job, JobRepository, webhook_message
from vid2mp3.queue import Publisher
from vid2mp3.queue.topology import WEBHOOK_QUEUE
from vid2mp3.webhooks import EVENT_TYPES, MAX_ATTEMPTS, RETRY_DELAYS_S, Attempt, Kind, event_id
from vid2mp3.webhooks.records import DeliveryLog
from vid2mp3.webhooks.signing import HEADER, signature_header
from vid2mp3.webhooks.targets import (
    AllowedHosts,
    ForbiddenTarget,
    Resolver,
    Unresolvable,
    parse_callback_url,
    resolve_target,
    system_resolver,
)
from vid2mp3.webhooks.transport import Transport, TransportError

__all__ = ["Outcome", "WebhookDeps", "WebhookRequest", "deliver", "deliveries_for_api", "event_body",
           "parse_message", "redrive", "webhook_message"]

USER_AGENT = "vid2mp3-webhooks/1"
EVENT_ID_HEADER = "Vid2mp3-Event-Id"
# A due delivery the scheduled function published is not published again for this long (the webhook
# function took it, or the broker will redeliver it).
REPUBLISH_AFTER_S = 300.0
REDRIVE_BATCH = 100


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry_scheduled"
    FAILED = "failed"
    ALREADY_DONE = "already_done"
    NOT_DUE = "not_due"
    SKIPPED = "skipped"  # the job or its owner is gone, or it has no callback URL
    INVALID = "invalid"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class WebhookDeps:
    jobs: JobRepository
    secrets: Callable[[str], str | None]  # owner id -> signing secret (None: no such account)
    log: DeliveryLog
    transport: Transport
    allowed: AllowedHosts
    resolver: Resolver = system_resolver
    clock: Callable[[], datetime] = _utcnow
    monotonic: Callable[[], float] = field(default=time.monotonic)


@dataclass(frozen=True)
class WebhookRequest:
    job_id: str
    kind: Kind
    correlation_id: str | None = None


def parse_message(body: bytes) -> WebhookRequest:
    """ValueError for anything but a webhook message."""
    data = json.loads(body)
    if not isinstance(data, dict) or data.get("kind") not in EVENT_TYPES:
        raise ValueError("not a webhook message")
    correlation = data.get("correlation_id")
    return WebhookRequest(str(UUID(str(data.get("job_id")))), data["kind"],
                          correlation if isinstance(correlation, str) else None)


def event_body(job: Job, kind: Kind) -> bytes:
    """The JSON event: the same bytes for every try (its time is when the job finished)."""
    shown = job.to_api()
    shown.pop("progress", None)
    event = {"id": event_id(job.id, kind), "type": EVENT_TYPES[kind],
             "created": int(job.updated_at.timestamp()), "job": shown}
    return json.dumps(event, separators=(",", ":"), sort_keys=True).encode()


def deliver(request: WebhookRequest, d: WebhookDeps) -> Outcome:
    job = d.jobs.get(request.job_id)
    wanted_status = "done" if request.kind == "completed" else "failed"
    if job is None or not job.callback_url or job.status != wanted_status:
        return Outcome.SKIPPED
    secret = d.secrets(job.owner_id)
    if secret is None:
        return Outcome.SKIPPED
    with d.log.claim(job.id, request.kind, owner_id=job.owner_id, url=job.callback_url,
                     event_id=event_id(job.id, request.kind), correlation_id=request.correlation_id) as claim:
        record = claim.record
        now = d.clock()
        if record.status != "pending":
            return Outcome.ALREADY_DONE
        if record.attempts and record.next_attempt_at > now:  # a retry, before its time: the re-drive sends it
            return Outcome.NOT_DUE
        body = event_body(job, request.kind)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   EVENT_ID_HEADER: record.event_id, HEADER: signature_header(secret, int(now.timestamp()), body)}
        started = d.monotonic()
        status: int | None = None
        error: str | None = None
        final = False
        try:
            target = parse_callback_url(record.url)
            status = d.transport.post(target, resolve_target(target, d.allowed, d.resolver), body, headers)
        except Unresolvable as exc:
            error = str(exc)
        except ForbiddenTarget as exc:
            error, final = str(exc), True
        except TransportError as exc:
            error = str(exc)
        attempt = Attempt(at=now, status=status, error=error, ms=int((d.monotonic() - started) * 1000))
        tries = len(record.attempts) + 1
        if status is not None and 200 <= status < 300:
            claim.record_attempt(attempt, "delivered")
            return Outcome.DELIVERED
        retryable = not final and (status is None or status >= 500 or status == 429)
        if not retryable or tries >= MAX_ATTEMPTS:
            claim.record_attempt(attempt, "failed")
            return Outcome.FAILED
        claim.record_attempt(attempt, "pending", now + timedelta(seconds=RETRY_DELAYS_S[tries - 1]))
        return Outcome.RETRY


def redrive(log: DeliveryLog, publisher: Publisher, *, queue: str = WEBHOOK_QUEUE,
            limit: int = REDRIVE_BATCH) -> list[str]:
    """Publish the deliveries whose next try is due (the scheduled function); returns their job ids."""
    sent: list[str] = []
    for record in log.claim_due(limit, REPUBLISH_AFTER_S):
        publisher.publish(queue, {"job_id": record.job_id, "kind": record.kind}, correlation_id=record.event_id)
        sent.append(record.job_id)
    return sent


def deliveries_for_api(log: DeliveryLog | None, job: Job) -> Mapping[str, Any] | None:
    """The job's `webhook` as GET /videos/{id} shows it, or None without a callback URL."""
    if not job.callback_url:
        return None
    records = log.for_job(job.id) if log is not None else []
    return {"url": job.callback_url, "deliveries": [r.to_api() for r in records]}

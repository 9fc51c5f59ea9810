"""Notify function: emails the job's owner when a conversion completed or failed. A thin adapter.

Triggered by the `conversion_completed` and `conversion_failed` queues through `aws:rmq` events (Amazon
MQ's event source mapping on AWS, infra/bridge.py locally). Any error fails the whole batch, and the
broker redelivers all of it: messages already handled are recorded as such and are no-ops the second
time. A message that is not a conversion event is logged and skipped, not retried: MQ event sources
have no partial-batch failure, so retrying it would also push every good message of its batch towards
the delivery limit and the dead-letter queue.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from vid2mp3.bootstrap import bootstrap_notify
from vid2mp3.errors import DependencyUnavailable
from vid2mp3.log import get_logger
from vid2mp3.mail import MailerMisconfigured
from vid2mp3.notify import InvalidEvent
from vid2mp3.notify.events import parse_notification, rmq_messages
from vid2mp3.notify.service import NotifyDeps, notify
from vid2mp3.warmup import warmable

logger = get_logger("notify")
_deps: NotifyDeps | None = None


def deps() -> NotifyDeps:
    """Bootstrapped on the first event of a cold start, then reused."""
    global _deps
    if _deps is None:
        _deps = bootstrap_notify()
    return _deps


@warmable
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    return handle(event, deps())


def handle(event: dict[str, Any], d: NotifyDeps) -> dict[str, int]:
    """Every message of the batch, in order; returns how many ended which way."""
    outcomes: Counter[str] = Counter()
    for message in rmq_messages(event):
        logger.set_correlation_id(message.correlation_id)
        where = {"queue": message.queue, "redelivered": message.redelivered}
        try:
            notification = parse_notification(message)
        except InvalidEvent as exc:
            logger.error("message skipped: not a conversion event",
                         extra={**where, "reason": str(exc), "body": message.body[:300].decode("utf-8", "replace")})
            outcomes["invalid"] += 1
            continue
        logger.set_correlation_id(notification.correlation_id)
        where |= {"job_id": notification.job_id, "kind": notification.kind}
        try:
            outcome = notify(notification, d)
        except (DependencyUnavailable, MailerMisconfigured) as exc:
            level = logger.error if isinstance(exc, MailerMisconfigured) else logger.warning
            level("notification not sent; the batch will be redelivered", extra={**where, "error": str(exc)})
            raise
        logger.info(f"notification {outcome}", extra={**where, "outcome": str(outcome)})
        outcomes[str(outcome)] += 1
    return dict(outcomes)

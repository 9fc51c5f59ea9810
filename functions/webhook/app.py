"""Webhook function: POSTs a finished job's outcome, signed, to the job's callback URL. A thin adapter.

Triggered by `webhook_queue` through `aws:rmq` events (Amazon MQ's event source mapping on AWS,
infra/bridge.py locally). vid2mp3.webhooks.service decides per message; a failed try is recorded and
retried later by the scheduled function, so only a database outage fails the batch (redelivered: the
delivery record makes every message already handled a no-op). A message that is not a webhook message is
logged and skipped.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from vid2mp3.bootstrap import bootstrap_webhook
from vid2mp3.log import get_logger
from vid2mp3.queue.rmq import rmq_messages
from vid2mp3.warmup import warmable
from vid2mp3.webhooks.service import Outcome, WebhookDeps, deliver, parse_message

logger = get_logger("webhook")
_deps: WebhookDeps | None = None


def deps() -> WebhookDeps:
    """Bootstrapped on the first event of a cold start, then reused."""
    global _deps
    if _deps is None:
        _deps = bootstrap_webhook()
    return _deps


@warmable
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    outcomes: Counter[str] = Counter()
    for message in rmq_messages(event):
        logger.set_correlation_id(message.correlation_id)
        try:
            request = parse_message(message.body)
        except ValueError:
            logger.error("message skipped: not a webhook message", extra={"queue": message.queue})
            outcomes[str(Outcome.INVALID)] += 1
            continue
        outcome = deliver(request, deps())
        logger.info(f"webhook {outcome}", extra={"job_id": request.job_id, "kind": request.kind,
                                                 "outcome": str(outcome)})
        outcomes[str(outcome)] += 1
    return dict(outcomes)

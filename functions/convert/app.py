"""Convert function: turns each message of video_conversion_queue into an MP3. A thin adapter.

Triggered through `aws:rmq` events (Amazon MQ's event source mapping on AWS, infra/bridge.py locally),
BatchSize 1. Per message, vid2mp3.convert.service decides; here the outcome becomes the invocation's:

- done, failed (permanent), retries exhausted, skipped, invalid: handled, return normally (acked);
- anything raised is transient: the invocation fails and the whole batch is redelivered. Messages of
  the batch already handled are no-ops the second time (the job is finished).

Messages from `video_conversion_queue.dlq` (when the template maps it here) are jobs the broker gave up
on: they are marked failed with `retries_exhausted` unless they finished.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from vid2mp3.bootstrap import bootstrap_convert
from vid2mp3.convert.events import deliveries
from vid2mp3.convert.service import Converter
from vid2mp3.log import get_logger
from vid2mp3.warmup import warmable

logger = get_logger("convert")
_converter: Converter | None = None


def converter() -> Converter:
    """Bootstrapped on the first event of a cold start, then reused."""
    global _converter
    if _converter is None:
        _converter = bootstrap_convert(logger=logger)
    return _converter


def _remaining_s(context: Any) -> float | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining() / 1000 if callable(remaining) else None


@warmable
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    convert = converter()
    outcomes: Counter[str] = Counter()
    for delivery in deliveries(event):
        logger.set_correlation_id(delivery.correlation_id)
        where = {"queue": delivery.queue, "redelivered": delivery.redelivered,
                 "delivery_count": delivery.delivery_count}
        try:
            outcome = convert.handle(delivery, remaining_s=_remaining_s(context))
        except Exception as exc:
            logger.warning("conversion interrupted; the batch will be redelivered",
                           extra={**where, "error": f"{type(exc).__name__}: {exc}"})
            raise
        logger.info(f"message {outcome}", extra={**where, "outcome": str(outcome)})
        outcomes[str(outcome)] += 1
    return dict(outcomes)

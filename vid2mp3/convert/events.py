"""From an `aws:rmq` event to conversion requests (the event itself: vid2mp3.queue.rmq)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from uuid import UUID

from vid2mp3.queue.rmq import (
    DELIVERY_COUNT_HEADER,
    EVENT_SOURCE,
    RmqMessage,
    header_int,
    rmq_messages,
    safe_correlation_id,
)
from vid2mp3.queue.topology import VIDEO_CONVERSION_QUEUE, dead_letter_queue

__all__ = ["DEAD_LETTER_QUEUE", "DELIVERY_COUNT_HEADER", "EVENT_SOURCE", "ConversionRequest", "Delivery",
           "InvalidMessage", "deliveries", "header_int", "parse_request", "safe_correlation_id"]

DEAD_LETTER_QUEUE = dead_letter_queue(VIDEO_CONVERSION_QUEUE)
Delivery = RmqMessage
deliveries = rmq_messages


class InvalidMessage(ValueError):
    """Not a conversion message; retrying cannot help."""


@dataclass(frozen=True)
class ConversionRequest:
    """The message on video_conversion_queue (vid2mp3.jobs.conversion_message). The job row is the
    authority on everything else; the message only says which job to convert."""

    job_id: str
    correlation_id: str | None = None


def parse_request(delivery: Delivery) -> ConversionRequest:
    try:
        data = json.loads(delivery.body)
    except ValueError:
        raise InvalidMessage("the body is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidMessage("the body is not a JSON object")
    try:
        job_id = str(UUID(str(data.get("job_id"))))
    except ValueError:
        raise InvalidMessage("job_id is missing or not a UUID") from None
    return ConversionRequest(
        job_id=job_id,
        correlation_id=safe_correlation_id(data.get("correlation_id")) or delivery.correlation_id,
    )

"""Queue names and arguments, declared identically by every publisher, consumer and the bridge.

Work queues are quorum queues with a delivery limit: the broker counts deliveries (a nack, a
closed channel, a killed consumer all count) and dead-letters a message past the limit into the
queue's `.dlq`. This is how Amazon MQ for RabbitMQ is told to stop redelivering to Lambda too, so
the local bridge and AWS behave the same. The dead-letter strategy is at-least-once, so a message
is removed from the work queue only once the dead-letter queue has confirmed it.
"""

from __future__ import annotations

from typing import Any

VIDEO_CONVERSION_QUEUE = "video_conversion_queue"
CONVERSION_COMPLETED_QUEUE = "conversion_completed"
CONVERSION_FAILED_QUEUE = "conversion_failed"
# Which finished jobs' webhooks to deliver (vid2mp3.webhooks): convert publishes, the webhook function consumes.
WEBHOOK_QUEUE = "webhook_queue"
WORK_QUEUES = (VIDEO_CONVERSION_QUEUE, CONVERSION_COMPLETED_QUEUE, CONVERSION_FAILED_QUEUE, WEBHOOK_QUEUE)

DEFAULT_DELIVERY_LIMIT = 5
DEAD_LETTER_EXCHANGE = "vid2mp3.dlx"


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dlq"


def work_queue_arguments(queue: str, delivery_limit: int = DEFAULT_DELIVERY_LIMIT) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": dead_letter_queue(queue),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def dead_letter_queue_arguments() -> dict[str, Any]:
    return {"x-queue-type": "quorum"}


def is_dead_letter_queue(queue: str) -> bool:
    return queue.endswith(".dlq")


def declare(channel: Any, queue: str, delivery_limit: int = DEFAULT_DELIVERY_LIMIT) -> None:
    """Declare `queue`, its dead-letter queue and the exchange between them (idempotent).

    `queue` may itself be a dead-letter queue (a consumer of `<work queue>.dlq`): then that queue
    and its binding are declared with the dead-letter queue's own arguments.
    `channel` is a pika channel; declaring with the same arguments twice is a no-op.
    """
    channel.exchange_declare(exchange=DEAD_LETTER_EXCHANGE, exchange_type="direct", durable=True)
    if is_dead_letter_queue(queue):
        channel.queue_declare(queue=queue, durable=True, arguments=dead_letter_queue_arguments())
        channel.queue_bind(queue=queue, exchange=DEAD_LETTER_EXCHANGE, routing_key=queue)
        return
    dlq = dead_letter_queue(queue)
    channel.queue_declare(queue=dlq, durable=True, arguments=dead_letter_queue_arguments())
    channel.queue_bind(queue=dlq, exchange=DEAD_LETTER_EXCHANGE, routing_key=dlq)
    channel.queue_declare(queue=queue, durable=True, arguments=work_queue_arguments(queue, delivery_limit))

"""RabbitMQ publisher (pika, publisher confirms, persistent JSON messages)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Mapping
from typing import Any

import pika
import pika.exceptions

from vid2mp3.errors import DependencyUnavailable
from vid2mp3.queue import topology

_CONNECT_ERRORS = (pika.exceptions.AMQPError, OSError)


class RabbitMQPublisher:
    """One lazily opened connection per cold start; reopened when the broker dropped it."""

    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        self._params = pika.URLParameters(url)
        self._params.socket_timeout = connect_timeout
        self._params.blocked_connection_timeout = connect_timeout
        self._params.connection_attempts = 1
        self._conn: pika.BlockingConnection | None = None
        self._channel: Any = None
        self._declared: set[str] = set()
        self._lock = threading.Lock()

    def _open(self) -> Any:
        if self._conn is None or self._conn.is_closed or self._channel is None or self._channel.is_closed:
            self.close()
            self._conn = pika.BlockingConnection(self._params)
            self._channel = self._conn.channel()
            self._channel.confirm_delivery()
            self._declared.clear()
        return self._channel

    def publish(self, queue: str, body: Mapping[str, Any], *, correlation_id: str) -> None:
        payload = json.dumps(body, separators=(",", ":")).encode()
        props = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            correlation_id=correlation_id,
        )
        with self._lock:
            for attempt in (1, 2):  # one retry on a stale connection
                try:
                    channel = self._open()
                    if queue not in self._declared:
                        topology.declare(channel, queue)
                        self._declared.add(queue)
                    channel.basic_publish(
                        exchange="", routing_key=queue, body=payload, properties=props, mandatory=True
                    )
                    return
                except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
                    self.close()
                    raise DependencyUnavailable("The message broker did not confirm the message.") from exc
                except _CONNECT_ERRORS as exc:
                    self.close()
                    if attempt == 2:
                        raise DependencyUnavailable("The message broker is unavailable.") from exc

    def ping(self) -> None:
        with self._lock:
            try:
                self._open()
                assert self._conn is not None
                self._conn.process_data_events(0)
            except _CONNECT_ERRORS as exc:
                self.close()
                raise DependencyUnavailable("The message broker is unavailable.") from exc

    def close(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None and conn.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                conn.close()

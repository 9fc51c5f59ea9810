"""RabbitMQ -> Lambda event-source bridge: the local stand-in for AWS's Amazon MQ event source mapping.

No AWS emulator runs Amazon MQ (RabbitMQ) event source mappings, so for each `Type: MQ` event of the
template this consumes the queue and invokes the function through the Lambda API of the same endpoint,
with the `aws:rmq` event AWS sends. What it copies from AWS, and how:

- Event shape: `build_rmq_event`, field for field as the example in the AWS Lambda Developer Guide,
  "Using Lambda with Amazon MQ" (https://docs.aws.amazon.com/lambda/latest/dg/with-mq.html).
- Batching: a consumer collects up to `batch_size` messages, or what arrived within the batching window
  after the first message of the batch, then invokes synchronously (RequestResponse).
- Concurrency: one consumer (one in-flight invocation) per mapping unless the mapping says otherwise;
  each consumer has its own connection (to the mapping's virtual host) and channel, prefetch = batch size.
- Settling: the batch is acked (multiple=True up to its last delivery tag) only after the invocation
  returned without a `FunctionError`; on a function error it is nacked with requeue, so the broker
  redelivers it. The broker counts deliveries: work queues are quorum queues with `x-delivery-limit`
  and dead-letter into `<queue>.dlq` past it (vid2mp3.queue.topology). The bridge keeps no counters.
- When the Lambda API itself is unavailable (connection refused, throttled, function not found while a
  deploy replaces it) the function did not run: the batch stays unacked and the invoke is retried with
  backoff, so an emulator restart does not burn delivery attempts and dead-letter healthy messages.
- The invoke runs on a worker thread while the connection's thread keeps servicing heartbeats; acks and
  nacks are sent from the connection's thread, only on the channel the messages came from.
- Lost connection: reconnect with exponential backoff (capped at 30 s); an invocation still running
  from the old connection is never acked (the broker redelivers its messages) and must end before the
  consumer starts another, so the concurrency limit holds across reconnects.

Run it: `python -m infra.bridge --endpoint URL --stack NAME --rabbitmq-url URL [--template PATH]`.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from infra import template_model
from infra.template_model import MQEventSource
from vid2mp3.queue import topology

LOGGER_NAME = "vid2mp3.bridge"
MAX_BACKOFF_S = 30.0
ERROR_BACKOFF_S = 0.5  # pause after the 2nd consecutive function error; doubles up to MAX_BACKOFF_S
# The invoke's read timeout must outlast the longest function timeout, or the bridge would give up
# (and redeliver) while the function still runs.
READ_TIMEOUT_MARGIN_S = 30.0
BROKER_ARN_PARAMETER = "MQBrokerArn"
EVENT_SOURCE = "aws:rmq"

# AWS formats dates in the event as Java's default (Gson) does for Locale.US: "Jan 1, 1970, 12:33:41 AM",
# in UTC (the zone Lambda's pollers run in). Spelled out so the host's locale cannot change it.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Lambda API errors that mean "the function did not run": hold the batch and retry the invoke.
_RETRYABLE_API_ERRORS = frozenset({
    "ResourceNotFoundException",  # e.g. while a redeploy replaces the function
    "ResourceNotReadyException",
    "ResourceConflictException",
    "TooManyRequestsException",
    "ServiceException",
    "EC2ThrottledException",
})


class BridgeError(Exception):
    """A configuration problem the bridge cannot run with; the message is one line for the user."""


@dataclass(frozen=True)
class Mapping:
    """One event source mapping: which queue feeds which function, as which broker."""

    source: MQEventSource
    function: str  # function name or ARN to invoke
    event_source_arn: str  # the broker ARN, sent as `eventSourceArn`


@dataclass(frozen=True)
class Message:
    """One delivered message, as the event needs it."""

    body: bytes
    properties: Any  # pika.BasicProperties
    redelivered: bool
    delivery_tag: int = 0


# --------------------------------------------------------------------------------------------------
# The event


def aws_timestamp(value: datetime | int | float | None) -> str | None:
    """`Jan 1, 1970, 12:33:41 AM` (UTC) as in AWS's example; None stays None."""
    if value is None:
        return None
    try:
        when = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    hour = when.hour % 12 or 12
    half = "AM" if when.hour < 12 else "PM"
    month = _MONTHS[when.month - 1]
    return f"{month} {when.day}, {when.year}, {hour}:{when.minute:02d}:{when.second:02d} {half}"


def _java_bytes(data: bytes) -> list[int]:
    # AWS's poller is Java: a header's LongString is serialized as its `byte[]`, and Java bytes are
    # signed, so bytes >= 0x80 appear as negative numbers (0xC3 -> -61).
    return [b - 256 if b > 127 else b for b in data]


def _header_value(value: Any) -> Any:
    """A header value as AWS encodes it: strings and byte arrays as {"bytes": [...]}, numbers as numbers."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return {"bytes": _java_bytes(value.encode("utf-8"))}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": _java_bytes(bytes(value))}
    if isinstance(value, int | float):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return aws_timestamp(value)
    if isinstance(value, dict):
        return {str(k): _header_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_header_value(v) for v in value]
    return str(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _basic_properties(props: Any, body_size: int) -> dict[str, Any]:
    headers = getattr(props, "headers", None)
    return {
        "contentType": _text(getattr(props, "content_type", None)),
        "contentEncoding": _text(getattr(props, "content_encoding", None)),
        "headers": None if headers is None else {str(k): _header_value(v) for k, v in headers.items()},
        "deliveryMode": getattr(props, "delivery_mode", None),
        "priority": getattr(props, "priority", None),
        "correlationId": _text(getattr(props, "correlation_id", None)),
        "replyTo": _text(getattr(props, "reply_to", None)),
        "expiration": _text(getattr(props, "expiration", None)),
        "messageId": _text(getattr(props, "message_id", None)),
        "timestamp": aws_timestamp(getattr(props, "timestamp", None)),
        "type": _text(getattr(props, "type", None)),
        "userId": _text(getattr(props, "user_id", None)),
        "appId": _text(getattr(props, "app_id", None)),
        "clusterId": _text(getattr(props, "cluster_id", None)),
        "bodySize": body_size,
    }


def queue_key(queue: str, virtual_host: str) -> str:
    """AWS keys `rmqMessagesByQueue` by `<queue>::<virtual host>`."""
    return f"{queue}::{virtual_host}"


def build_rmq_event(
    event_source_arn: str, queue: str, virtual_host: str, messages: Sequence[Message]
) -> dict[str, Any]:
    """The `aws:rmq` event AWS sends for a batch from one queue (every key present, null when unset)."""
    return {
        "eventSource": EVENT_SOURCE,
        "eventSourceArn": event_source_arn,
        "rmqMessagesByQueue": {
            queue_key(queue, virtual_host): [
                {
                    "basicProperties": _basic_properties(m.properties, len(m.body)),
                    "redelivered": bool(m.redelivered),
                    "data": base64.b64encode(m.body).decode("ascii"),
                }
                for m in messages
            ]
        },
    }


# --------------------------------------------------------------------------------------------------
# Invoking


@dataclass
class _Result:
    outcome: str  # "ok" | "function_error" | "invoke_error" | "lambda_unavailable"
    duration_ms: int
    detail: str | None = None

    @property
    def hold(self) -> bool:
        """The function did not run: keep the batch unacked and retry the invoke."""
        return self.outcome == "lambda_unavailable"


def _error_summary(payload: bytes) -> str:
    try:
        data = json.loads(payload)
    except ValueError:
        return payload[:200].decode("utf-8", errors="replace")
    if isinstance(data, dict):
        return f"{data.get('errorType', 'Error')}: {data.get('errorMessage', '')}"[:300]
    return str(data)[:300]


def _invoke(client: Any, function: str, event: dict[str, Any]) -> _Result:
    started = time.monotonic()

    def result(outcome: str, detail: str | None = None) -> _Result:
        return _Result(outcome, int((time.monotonic() - started) * 1000), detail)

    try:
        response = client.invoke(
            FunctionName=function, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
        )
        payload = response["Payload"].read()
        if response.get("FunctionError"):
            return result("function_error", _error_summary(payload))
        return result("ok")
    except (ReadTimeoutError, ConnectionClosedError) as exc:
        # The function may have run (or still runs): a failed delivery, redelivered by the broker.
        return result("invoke_error", f"{type(exc).__name__}: {exc}")
    except EndpointConnectionError as exc:
        return result("lambda_unavailable", f"{type(exc).__name__}: {exc}")
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        outcome = "lambda_unavailable" if code in _RETRYABLE_API_ERRORS or status >= 500 else "invoke_error"
        return result(outcome, f"{code or 'ClientError'}: {exc}")
    except BotoCoreError as exc:
        return result("invoke_error", f"{type(exc).__name__}: {exc}")


class _Invocation:
    """One invoke on its own daemon thread (a daemon, so a stuck invoke cannot hold the process open)."""

    def __init__(self, session: int, batch: list[Message], client: Any, function: str,
                 event: dict[str, Any]) -> None:
        self.session = session
        self.batch = batch
        self.result: _Result | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(client, function, event), daemon=True,
                                        name=f"bridge-invoke-{function}")
        self._thread.start()

    def _run(self, client: Any, function: str, event: dict[str, Any]) -> None:
        try:
            self.result = _invoke(client, function, event)
        except Exception as exc:  # an unexpected invoke failure is a failed delivery
            self.result = _Result("invoke_error", 0, f"{type(exc).__name__}: {exc}")
        finally:
            self._done.set()

    def done(self) -> bool:
        return self._done.is_set()


# --------------------------------------------------------------------------------------------------
# Consuming


def _log(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    logger.log(level, json.dumps({"event": event, **fields}, default=str, separators=(", ", ": ")))


def redact_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class _ConnectionLost(Exception):
    """The broker cancelled our consumer or closed the channel; start a new session."""


@dataclass
class _Session:
    """State that lives and dies with one connection: nothing here outlives it."""

    id: int
    pending: deque[tuple[float, Message]] = field(default_factory=deque)
    retry_at: float | None = None
    retry_batch: list[Message] | None = None
    retry_delay: float = 1.0
    # After a function error the next invocation waits, doubling per consecutive error: a poison
    # message or a dependency outage is retried at a bounded rate instead of in a tight loop.
    error_streak: int = 0
    pause_until: float | None = None


class _Consumer:
    """One consumer of one mapping: its own connection, channel and (at most one) in-flight invocation."""

    def __init__(self, bridge: Bridge, mapping: Mapping, index: int) -> None:
        self._bridge = bridge
        self._mapping = mapping
        self._index = index
        self._name = f"{mapping.source.function}/{mapping.source.event}#{index}"
        self._current: _Invocation | None = None
        self._sessions = 0
        self.thread = threading.Thread(target=self._run, name=f"bridge-{self._name}", daemon=True)

    # -- logging

    def _fields(self) -> dict[str, Any]:
        src = self._mapping.source
        return {"mapping": self._name, "function": self._mapping.function, "queue": src.queue,
                "vhost": src.virtual_host}

    def _log(self, level: int, event: str, **fields: Any) -> None:
        _log(self._bridge.logger, level, event, **self._fields(), **fields)

    # -- the connection loop

    def _run(self) -> None:
        backoff = 1.0
        while not self._bridge.stopping.is_set():
            connected_at: float | None = None
            try:
                connection = pika.BlockingConnection(
                    self._bridge.connection_parameters(self._name, self._mapping.source.virtual_host)
                )
            except (pika.exceptions.AMQPError, OSError) as exc:
                self._log(logging.WARNING, "connect_failed", error=_describe(exc), retry_in_s=backoff)
            else:
                connected_at = time.monotonic()
                try:
                    self._serve(connection)
                except (pika.exceptions.AMQPError, OSError, _ConnectionLost) as exc:
                    if not self._bridge.stopping.is_set():
                        self._log(logging.WARNING, "connection_lost", error=_describe(exc),
                                  retry_in_s=backoff)
                except Exception as exc:  # keep the consumer alive; say what happened
                    self._log(logging.ERROR, "consumer_error", error=_describe(exc), retry_in_s=backoff)
                finally:
                    _close_quietly(connection)
            if connected_at is not None and time.monotonic() - connected_at > MAX_BACKOFF_S:
                backoff = 1.0  # a session that lasted starts over; one that failed at once backs off
            if self._bridge.stopping.wait(backoff):
                break
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        self._log(logging.INFO, "consumer_stopped")

    def _serve(self, connection: Any) -> None:
        src = self._mapping.source
        self._sessions += 1
        session = _Session(self._sessions)
        channel = connection.channel()
        topology.declare(channel, src.queue, self._bridge.delivery_limit)
        channel.basic_qos(prefetch_count=src.batch_size)

        def on_message(_ch: Any, method: Any, properties: Any, body: bytes) -> None:
            session.pending.append(
                (time.monotonic(), Message(body, properties, bool(method.redelivered), method.delivery_tag))
            )

        channel.basic_consume(queue=src.queue, on_message_callback=on_message)
        self._log(logging.INFO, "connected", session=session.id)
        stop_deadline: float | None = None
        try:
            while True:
                now = time.monotonic()
                current = self._current
                if current is not None and current.done():
                    self._current = None
                    if current.session == session.id:
                        self._settle(channel, session, current)
                    else:
                        self._log_stale(current)
                    current = None
                if self._bridge.stopping.is_set():
                    if current is None or current.session != session.id:
                        return  # buffered, unacked messages go back to the queue when the channel closes
                    if stop_deadline is None:
                        stop_deadline = now + self._bridge.grace_s
                    if now >= stop_deadline:
                        self._log(logging.WARNING, "invocation_abandoned", batch_size=len(current.batch),
                                  reason="stopping; not acked, the broker redelivers it")
                        return
                if not channel.is_open:
                    raise _ConnectionLost("the channel was closed")
                if not channel.consumer_tags:
                    raise _ConnectionLost("the broker cancelled the consumer")
                if current is None and not self._bridge.stopping.is_set():
                    self._maybe_invoke(session, now)
                connection.process_data_events(time_limit=self._wait_time(session, time.monotonic()))
        finally:
            current = self._current
            if (current is not None and current.session == session.id and not current.done()
                    and not self._bridge.stopping.is_set()):
                self._log(logging.WARNING, "invocation_orphaned", batch_size=len(current.batch),
                          reason="connection closed mid-invocation; it will not be acked")

    def _wait_time(self, session: _Session, now: float) -> float:
        if self._current is not None:
            return 0.1
        if session.retry_at is not None:
            return min(max(session.retry_at - now, 0.0), 0.5)
        if session.pause_until is not None and now < session.pause_until:
            return min(session.pause_until - now, 0.5)
        if session.pending:
            window = self._mapping.source.batching_window_s
            if len(session.pending) >= self._mapping.source.batch_size:
                return 0.0
            return min(max(session.pending[0][0] + window - now, 0.0), 0.5)
        return 0.5

    def _maybe_invoke(self, session: _Session, now: float) -> None:
        src = self._mapping.source
        if session.pause_until is not None and now < session.pause_until:
            return
        if session.retry_batch is not None:
            if session.retry_at is not None and now < session.retry_at:
                return
            batch = session.retry_batch
            session.retry_batch, session.retry_at = None, None
        elif session.pending and (
            len(session.pending) >= src.batch_size or now - session.pending[0][0] >= src.batching_window_s
        ):
            take = min(src.batch_size, len(session.pending))
            batch = [session.pending.popleft()[1] for _ in range(take)]
        else:
            return
        event = build_rmq_event(self._mapping.event_source_arn, src.queue, src.virtual_host, batch)
        self._current = _Invocation(
            session.id, batch, self._bridge.invoke_client, self._mapping.function, event
        )

    def _settle(self, channel: Any, session: _Session, invocation: _Invocation) -> None:
        result = invocation.result or _Result("invoke_error", 0, "no result")
        batch = invocation.batch
        last_tag = batch[-1].delivery_tag
        # Batches are taken in delivery order and settled one at a time, so `multiple=True` up to the
        # last tag covers exactly this batch.
        if result.outcome == "ok":
            channel.basic_ack(delivery_tag=last_tag, multiple=True)
            action = "ack"
            session.retry_delay = 1.0
            session.error_streak, session.pause_until = 0, None
            level = logging.INFO
        elif result.hold:
            session.retry_batch = batch
            session.retry_at = time.monotonic() + session.retry_delay
            action = f"retry in {session.retry_delay:g} s (not acked, not counted as a delivery)"
            session.retry_delay = min(session.retry_delay * 2, MAX_BACKOFF_S)
            level = logging.WARNING
        else:
            channel.basic_nack(delivery_tag=last_tag, multiple=True, requeue=True)
            session.retry_delay = 1.0
            streak = session.error_streak
            pause = min(ERROR_BACKOFF_S * 2 ** (streak - 1), MAX_BACKOFF_S) if streak else 0.0
            session.error_streak += 1
            session.pause_until = time.monotonic() + pause if pause else None
            action = f"nack (requeued; the broker counts the delivery); next invocation in {pause:g} s"
            level = logging.WARNING
        fields: dict[str, Any] = {
            "batch_size": len(batch),
            "redelivered": sum(1 for m in batch if m.redelivered),
            "outcome": result.outcome,
            "action": action,
            "duration_ms": result.duration_ms,
        }
        if result.detail:
            fields["error"] = result.detail
        self._log(level, "invocation", **fields)

    def _log_stale(self, invocation: _Invocation) -> None:
        result = invocation.result or _Result("invoke_error", 0, "no result")
        self._log(logging.WARNING, "invocation", batch_size=len(invocation.batch), outcome=result.outcome,
                  action="none (its connection was lost; the broker redelivers it)",
                  duration_ms=result.duration_ms)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, pika.exceptions.AMQPConnectionError) and not text:
        text = repr(exc.args) if exc.args else "connection failed"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _close_quietly(connection: Any) -> None:
    try:
        if connection.is_open:
            connection.close()
    except Exception:  # noqa: S110 - the connection is going away either way
        pass


# --------------------------------------------------------------------------------------------------
# The bridge


def configure_logging() -> logging.Logger:
    """The bridge's logger writing one JSON object per line to stderr (the CLI and the compose entry)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logging.getLogger("pika").setLevel(logging.CRITICAL)  # connection trouble is logged by the bridge
    return logger


def lambda_client(endpoint_url: str | None, *, read_timeout_s: float, region: str | None = None,
                  credentials: dict[str, str] | None = None) -> Any:
    """A Lambda client fit for the bridge: a read timeout above the function timeout, and no retries.

    botocore retries a read timeout by default, which would invoke the function again while it
    still runs; the broker's redelivery is the only retry.
    """
    import boto3
    from botocore.config import Config

    from infra.aws import CREDENTIALS, REGION

    creds = CREDENTIALS if credentials is None else credentials
    return boto3.client(
        "lambda",
        endpoint_url=endpoint_url,
        region_name=region or creds.get("AWS_DEFAULT_REGION", REGION),
        aws_access_key_id=creds.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=creds.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=creds.get("AWS_SESSION_TOKEN"),
        config=Config(read_timeout=read_timeout_s, connect_timeout=5,
                      retries={"total_max_attempts": 1}, max_pool_connections=32),
    )


class Bridge:
    """Consumes every mapping's queue and invokes its function; `start()` it, `stop()` it."""

    def __init__(
        self,
        rabbitmq_url: str,
        lambda_client: Any,
        mappings: Sequence[Mapping],
        *,
        delivery_limit: int = topology.DEFAULT_DELIVERY_LIMIT,
        logger: logging.Logger | None = None,
        grace_s: float = 5.0,
        function_timeout_s: float | None = None,
    ) -> None:
        scheme = urllib.parse.urlsplit(rabbitmq_url).scheme
        try:
            if scheme not in ("amqp", "amqps"):
                raise ValueError(f"the scheme is {scheme or 'missing'}, not amqp or amqps")
            pika.URLParameters(rabbitmq_url)
        except Exception as exc:
            raise BridgeError(f"the RabbitMQ URL is not valid: {exc}") from exc
        self.rabbitmq_url = rabbitmq_url
        self.lambda_client = lambda_client
        self.mappings = list(mappings)
        self.delivery_limit = delivery_limit
        self.logger = logger or logging.getLogger(LOGGER_NAME)
        self.grace_s = grace_s
        # Known up front where the endpoint has no GetFunctionConfiguration (a container's invoke gate).
        self.function_timeout_s = function_timeout_s
        self.invoke_client: Any = lambda_client
        self.stopping = threading.Event()
        self._consumers: list[_Consumer] = []

    def connection_parameters(self, name: str, virtual_host: str) -> pika.URLParameters:
        """The URL's host, credentials and options, on the mapping's virtual host (as AWS connects)."""
        params = pika.URLParameters(self.rabbitmq_url)
        params.virtual_host = virtual_host
        params.connection_attempts = 1  # the consumer loop does the retrying, with backoff
        params.client_properties = {"connection_name": f"vid2mp3-bridge {name}"}
        return params

    def _longest_timeout(self) -> float:
        """The longest timeout of the mapped functions (each must exist)."""
        if self.function_timeout_s is not None:
            return self.function_timeout_s
        longest = 0.0
        for mapping in self.mappings:
            try:
                conf = self.lambda_client.get_function_configuration(FunctionName=mapping.function)
            except (ClientError, BotoCoreError) as exc:
                raise BridgeError(f"cannot read function {mapping.function!r}: {_describe(exc)}") from exc
            longest = max(longest, float(conf.get("Timeout", 3)))
        return longest

    def _fit_client(self, longest_timeout: float) -> Any:
        """The client to invoke with: the given one if its read timeout outlasts every function's
        timeout and it does not retry, else a copy configured so (same endpoint and credentials)."""
        config = self.lambda_client.meta.config
        retries = config.retries or {}
        attempts = retries.get("total_max_attempts", (retries.get("max_attempts", 4) or 0) + 1)
        if float(config.read_timeout or 0) > longest_timeout and attempts <= 1:
            return self.lambda_client
        try:  # botocore has no public accessor for a client's credentials
            creds = self.lambda_client._request_signer._credentials.get_frozen_credentials()
        except AttributeError as exc:
            raise BridgeError(
                "the Lambda client retries invokes or times out before the function does; "
                "build it with infra.bridge.lambda_client(...)"
            ) from exc
        meta = self.lambda_client.meta
        return lambda_client(
            meta.endpoint_url,
            read_timeout_s=longest_timeout + READ_TIMEOUT_MARGIN_S,
            region=meta.region_name,
            credentials={"AWS_ACCESS_KEY_ID": creds.access_key, "AWS_SECRET_ACCESS_KEY": creds.secret_key,
                         **({"AWS_SESSION_TOKEN": creds.token} if creds.token else {})},
        )

    def _declare(self) -> None:
        """Declare every mapped queue (and its dead-letter queue) up front; idempotent."""
        for vhost in sorted({m.source.virtual_host for m in self.mappings}):
            try:
                connection = pika.BlockingConnection(self.connection_parameters("setup", vhost))
            except (pika.exceptions.AMQPError, OSError) as exc:
                raise BridgeError(
                    f"cannot connect to RabbitMQ at {redact_url(self.rabbitmq_url)} (vhost {vhost!r}): "
                    f"{_describe(exc)}"
                ) from exc
            try:
                channel = connection.channel()
                for mapping in self.mappings:
                    if mapping.source.virtual_host != vhost:
                        continue
                    try:
                        topology.declare(channel, mapping.source.queue, self.delivery_limit)
                    except pika.exceptions.AMQPChannelError as exc:
                        raise BridgeError(
                            f"cannot declare queue {mapping.source.queue!r}: {_describe(exc)}"
                        ) from exc
            finally:
                _close_quietly(connection)

    def start(self) -> None:
        if self._consumers:
            raise RuntimeError("the bridge is already started")
        self.invoke_client = self._fit_client(self._longest_timeout())
        self._declare()
        self.stopping.clear()
        for mapping in self.mappings:
            src = mapping.source
            _log(self.logger, logging.INFO, "mapping", function=mapping.function, queue=src.queue,
                 vhost=src.virtual_host, batch_size=src.batch_size, batching_window_s=src.batching_window_s,
                 concurrency=src.concurrency, delivery_limit=self.delivery_limit,
                 broker=redact_url(self.rabbitmq_url))
            for index in range(max(1, src.concurrency)):
                self._consumers.append(_Consumer(self, mapping, index))
        for consumer in self._consumers:
            consumer.thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop consuming: an in-flight invocation gets `grace_s` to finish (and be acked), else it is
        abandoned unacked; buffered messages go back to the queue; connections are closed."""
        self.stopping.set()
        deadline = time.monotonic() + (timeout if timeout is not None else self.grace_s + 10)
        for consumer in self._consumers:
            consumer.thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._consumers = []

    def alive(self) -> bool:
        return bool(self._consumers) and all(c.thread.is_alive() for c in self._consumers)

    def __enter__(self) -> Bridge:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------------
# The command line


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        try:
            fields = json.loads(message)
        except ValueError:
            fields = None
        if not isinstance(fields, dict):
            fields = {"message": message}
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            **fields,
        }
        return json.dumps(line, default=str)


def mappings_for_stack(cfn: Any, stack: str, template_path: Path = template_model.TEMPLATE) -> list[Mapping]:
    """The template's MQ events, each with its function's physical name in `stack` (a CloudFormation
    client's view) and the broker ARN: the stack's `MQBrokerArn` parameter, else the template default."""
    template = template_model.load_template(template_path)
    try:
        stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
        resources = cfn.describe_stack_resources(StackName=stack)["StackResources"]
    except (ClientError, BotoCoreError) as exc:
        raise BridgeError(f"cannot read stack {stack!r}: {_describe(exc)}") from exc
    parameters = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in (stacks[0].get("Parameters") or [])
        if "ParameterValue" in p and p["ParameterValue"] != "****"  # NoEcho values come back masked
    }
    broker_arn = parameters.get(BROKER_ARN_PARAMETER) or template_model.parameter_defaults(template).get(
        BROKER_ARN_PARAMETER
    )
    if not broker_arn:
        raise BridgeError(f"no broker ARN: stack {stack!r} has no {BROKER_ARN_PARAMETER} parameter")
    physical = {r["LogicalResourceId"]: r.get("PhysicalResourceId") for r in resources}
    mappings: list[Mapping] = []
    for source in template_model.mq_event_sources(template, parameters):
        name = physical.get(source.function)
        if not name:
            raise BridgeError(f"stack {stack!r} has no deployed function {source.function!r}")
        mappings.append(Mapping(source=source, function=str(name), event_source_arn=str(broker_arn)))
    return mappings


def mappings_for_function(function: str, parameters: dict[str, Any],
                          template_path: Path = template_model.TEMPLATE) -> tuple[list[Mapping], float]:
    """The MQ events of one function, invoked as `function` (the name a container's Invoke API takes),
    each with one consumer: on Kubernetes a pod is one sandbox, and KEDA adds pods. Also the function's
    timeout (Globals or its own)."""
    template = template_model.load_template(template_path)
    params = {**template_model.parameter_defaults(template), **parameters}
    broker_arn = str(params.get(BROKER_ARN_PARAMETER) or "")
    sources = [s for s in template_model.mq_event_sources(template, params) if s.function == function]
    if not sources:
        raise BridgeError(f"function {function!r} has no MQ event in {template_path.name}")
    resource = template_model.functions(template)[function]
    globals_props = (template.get("Globals") or {}).get("Function") or {}
    timeout = (resource.get("Properties") or {}).get("Timeout", globals_props.get("Timeout", 3))
    mappings = [Mapping(source=replace(s, concurrency=1), function="function", event_source_arn=broker_arn)
                for s in sources]
    return mappings, float(timeout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.bridge", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--endpoint", help="AWS-compatible endpoint (the emulator)")
    parser.add_argument("--stack", help="CloudFormation stack the template was deployed as")
    parser.add_argument("--invoke-url", help="instead of --endpoint/--stack: one function's Invoke API (on "
                        "Kubernetes, the invoke gate beside the function's container); needs --function")
    parser.add_argument("--function", help="with --invoke-url: the logical id whose MQ events to consume")
    parser.add_argument("--rabbitmq-url", default=os.environ.get("RABBITMQ_URL"),
                        help="AMQP URL of the broker (default: RABBITMQ_URL)")
    parser.add_argument("--template", type=Path, default=template_model.TEMPLATE)
    parser.add_argument("--delivery-limit", type=int, default=topology.DEFAULT_DELIVERY_LIMIT)
    parser.add_argument("--grace", type=float, default=5.0,
                        help="seconds an in-flight invocation gets to finish on SIGINT/SIGTERM")
    args = parser.parse_args(argv)
    if not ((args.endpoint and args.stack) or (args.invoke_url and args.function)):
        parser.error("give --endpoint and --stack, or --invoke-url and --function")
    if not args.rabbitmq_url:
        parser.error("give --rabbitmq-url or set RABBITMQ_URL")

    logger = configure_logging()

    stop = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        import boto3

        from infra.aws import CREDENTIALS, REGION

        timeout: float | None = None
        if args.invoke_url:
            # The vhost the functions publish to is the one RABBITMQ_URL names (MQVirtualHost).
            vhost = str(pika.URLParameters(args.rabbitmq_url).virtual_host)
            mappings, timeout = mappings_for_function(args.function, {"MQVirtualHost": vhost}, args.template)
            endpoint = args.invoke_url
        else:
            cfn = boto3.client(
                "cloudformation", endpoint_url=args.endpoint, region_name=REGION,
                aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            )
            mappings = mappings_for_stack(cfn, args.stack, args.template)
            endpoint = args.endpoint
        if not mappings:
            _log(logger, logging.WARNING, "no_mappings", template=str(args.template))
        # The read timeout is raised past the functions' timeouts by Bridge.start().
        client = lambda_client(endpoint, read_timeout_s=READ_TIMEOUT_MARGIN_S)
        bridge = Bridge(args.rabbitmq_url, client, mappings, delivery_limit=args.delivery_limit,
                        logger=logger, grace_s=args.grace, function_timeout_s=timeout)
        bridge.start()
    except BridgeError as exc:
        _log(logger, logging.ERROR, "bridge_failed", error=str(exc))
        return 1
    _log(logger, logging.INFO, "bridge_started", mappings=len(mappings))
    while not stop.wait(1.0):
        if mappings and not bridge.alive():
            _log(logger, logging.ERROR, "bridge_failed", error="a consumer thread ended")
            return 1
    bridge.stop()
    _log(logger, logging.INFO, "bridge_stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

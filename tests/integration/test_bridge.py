"""The RabbitMQ -> Lambda bridge against the real broker and the real emulator (no mocks of either).

Each test uses its own queue (`test_bridge_<uuid>`, deleted afterwards) and its own function, created
through the emulator's Lambda API. The function appends every event it receives, with the time, as one
JSON line to a file, then acts on each message's JSON body: {"raise": true} fails, {"sleep": s}
sleeps, {"sleep_first": s} sleeps only on a first (not redelivered) delivery.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pika
import pytest

from infra import procs
from infra.bridge import LOGGER_NAME, Bridge, Mapping, lambda_client
from infra.emulator import CREDENTIALS, REGION, Emulator, ensure_venv
from infra.template_model import MQEventSource
from tests.unit.test_bridge_event import AWS_EXAMPLE  # AWS's documented example event
from vid2mp3.queue import topology

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".vid2mp3"
RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
VIRTUAL_HOST = pika.URLParameters(RABBITMQ_URL).virtual_host
BROKER_ARN = "arn:aws:mq:us-east-1:000000000000:broker:test-bridge:b-11111111-2222-3333-4444-555555555555"

HANDLER = textwrap.dedent('''
    import base64, json, os, time

    def handler(event, context):
        with open(os.environ["OUT"], "a") as out:
            out.write(json.dumps({"t": time.time(), "event": event}) + "\\n")
        for messages in event["rmqMessagesByQueue"].values():
            for message in messages:
                try:
                    command = json.loads(base64.b64decode(message["data"]))
                except ValueError:
                    continue
                if not isinstance(command, dict):
                    continue
                if command.get("sleep_first") and not message["redelivered"]:
                    time.sleep(command["sleep_first"])
                if command.get("sleep"):
                    time.sleep(command["sleep"])
                if command.get("raise"):
                    raise RuntimeError("asked to fail")
        return {"ok": True}
''')


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    # One MiniStack for the module on a free port. It shares the project's emulator venv, but gets a
    # state dir of its own, so its tmp dir and log do not collide with a running `make run`.
    ensure_venv(STATE)
    port = procs.free_port()
    state = STATE / "tests" / f"bridge-{port}"
    (state / "emulator").mkdir(parents=True, exist_ok=True)
    (state / "emulator" / "venv").symlink_to(STATE / "emulator" / "venv")
    emu = Emulator(state, port)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()
        shutil.rmtree(state, ignore_errors=True)
        with contextlib.suppress(OSError):
            state.parent.rmdir()  # .vid2mp3/tests, when no other test run uses it


@pytest.fixture(scope="module")
def lam(emulator: Emulator) -> Any:
    return lambda_client(emulator.endpoint, read_timeout_s=60)


def function_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("fn.py", HANDLER)
    return buf.getvalue()


def wait_active(lam: Any, name: str) -> None:
    wait_for(lambda: lam.get_function_configuration(FunctionName=name).get("State") in (None, "Active"),
             30, f"function {name} to be active")


@pytest.fixture
def make_function(lam: Any, tmp_path: Path) -> Iterator[Callable[..., tuple[str, Path]]]:
    created: list[str] = []

    def make(timeout: int = 10) -> tuple[str, Path]:
        name = f"bridge-test-{uuid.uuid4().hex[:10]}"
        out = tmp_path / f"{name}.jsonl"
        lam.create_function(
            FunctionName=name, Runtime="python3.11", Role="arn:aws:iam::000000000000:role/x",
            Handler="fn.handler", Code={"ZipFile": function_zip()}, Timeout=timeout,
            Environment={"Variables": {"OUT": str(out)}},
        )
        wait_active(lam, name)
        created.append(name)
        return name, out

    yield make
    for name in created:
        lam.delete_function(FunctionName=name)


@contextmanager
def amqp_channel() -> Iterator[Any]:
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        yield connection.channel()
    finally:
        connection.close()


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"test_bridge_{uuid.uuid4().hex}"
    with amqp_channel() as channel:
        topology.declare(channel, name)
    yield name
    with amqp_channel() as channel:
        channel.queue_delete(name)
        channel.queue_delete(topology.dead_letter_queue(name))


def publish(queue: str, *bodies: bytes, properties: pika.BasicProperties | None = None) -> None:
    with amqp_channel() as channel:
        channel.confirm_delivery()
        for body in bodies:
            channel.basic_publish(exchange="", routing_key=queue, body=body, mandatory=True,
                                  properties=properties or pika.BasicProperties(delivery_mode=2))


def ready(queue: str) -> int:
    """Messages ready in `queue`, from the queue leader itself (a passive declare).

    `rabbitmqctl list_queues` is no use for this: quorum queues publish its counters only every
    few seconds (0 ready, 0 unacked right after a publish).
    """
    with amqp_channel() as channel:
        return int(channel.queue_declare(queue, passive=True).method.message_count)


def stays(predicate: Callable[[], bool], seconds: float = 1.0) -> bool:
    """True if `predicate` holds throughout `seconds` (messages a closed channel held return async)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            return False
        time.sleep(0.1)
    return predicate()


def rabbitmqctl(*args: str) -> list[list[str]]:
    out = subprocess.run(["rabbitmqctl", "-q", *args, "--no-table-headers"], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    return [line.split("\t") for line in out.splitlines() if line.strip()]


def broker_connection(name: str) -> tuple[str, int] | None:
    """(pid, heartbeat seconds) of the connection the bridge named `name`, as the broker sees it."""
    for pid, client_properties, heartbeat in rabbitmqctl("list_connections", "pid", "client_properties",
                                                         "timeout"):
        if f'{{"connection_name","{name}"}}' in client_properties:
            return pid, int(heartbeat)
    return None


def unacked(connection_pid: str) -> int:
    """Messages delivered and not yet acked on that connection's channels (live, from the channels)."""
    return sum(int(n) for conn, n in rabbitmqctl("list_channels", "connection", "messages_unacknowledged")
               if conn == connection_pid)


def invocations(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def batch_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    [messages] = record["event"]["rmqMessagesByQueue"].values()
    return list(messages)


def source(queue: str, *, batch_size: int = 1, window: float = 0.0) -> MQEventSource:
    # The logical id names the bridge's broker connection: "vid2mp3-bridge <queue>/Work#0".
    # The virtual host RABBITMQ_URL names (the tests publish there), as a template's MQVirtualHost would.
    return MQEventSource(function=queue, event="Work", queue=queue, virtual_host=VIRTUAL_HOST,
                         batch_size=batch_size, batching_window_s=window, concurrency=1)


def connection_name(logical_id: str) -> str:
    return f"vid2mp3-bridge {logical_id}/Work#0"


@pytest.fixture
def bridge_logs(caplog: pytest.LogCaptureFixture) -> Callable[[], list[dict[str, Any]]]:
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)

    def records() -> list[dict[str, Any]]:
        return [json.loads(r.getMessage()) for r in caplog.records if r.name == LOGGER_NAME]

    return records


@contextmanager
def running(bridge: Bridge) -> Iterator[Bridge]:
    bridge.start()
    try:
        yield bridge
    finally:
        bridge.stop()


def assert_same_shape(actual: Any, expected: Any, path: str = "event") -> None:
    """Same keys at every level; same JSON type wherever the example has a value."""
    if isinstance(expected, dict) and path.endswith(".rmqMessagesByQueue"):
        # Keyed by "<queue>::<vhost>": one key, whose value has the example's shape.
        assert isinstance(actual, dict), path
        assert len(actual) == 1, path
        [(key, value)] = actual.items()
        assert key.endswith(f"::{VIRTUAL_HOST}"), path
        assert_same_shape(value, next(iter(expected.values())), f"{path}[{key}]")
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), path
        assert list(actual) == list(expected), path
        for key in expected:
            assert_same_shape(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), path
        for item in actual:
            assert_same_shape(item, expected[0], f"{path}[]")
    elif expected is not None:
        assert type(actual) is type(expected), f"{path}: {actual!r} vs {expected!r}"


# ---------------------------------------------------------------------------------------------- tests


def test_one_message_is_one_aws_shaped_invocation_then_acked(
    lam: Any, make_function: Callable[..., tuple[str, Path]], queue: str
) -> None:
    function, out = make_function()
    example = AWS_EXAMPLE["rmqMessagesByQueue"]["pizzaQueue::/"][0]
    body = base64.b64decode(example["data"])
    properties = pika.BasicProperties(
        content_type="text/plain",
        headers={"header1": "value1", "header2": "value2", "numberInHeader": 10},
        delivery_mode=1, priority=34, expiration="60000", timestamp=2021,
        correlation_id="corr-123", message_id="msg-1",
        user_id="guest",  # the broker only accepts the connection's own user here
    )
    publish(queue, body, properties=properties)
    assert ready(queue) == 1
    with running(Bridge(RABBITMQ_URL, lam, [Mapping(source(queue), function, BROKER_ARN)])):
        [record] = wait_for(lambda: invocations(out), 20, "the invocation")
        pid, _ = wait_for(lambda: broker_connection(connection_name(queue)), 5, "the bridge's connection")
        wait_for(lambda: unacked(pid) == 0, 10, "the ack")
        assert ready(queue) == 0
        time.sleep(0.5)  # nothing else arrives
        assert len(invocations(out)) == 1
    assert stays(lambda: ready(queue) == 0)  # closing the bridge's channel gave nothing back

    event = record["event"]
    assert_same_shape(event, AWS_EXAMPLE)
    assert event["eventSource"] == "aws:rmq"
    assert event["eventSourceArn"] == BROKER_ARN
    assert list(event["rmqMessagesByQueue"]) == [f"{queue}::{VIRTUAL_HOST}"]
    [message] = event["rmqMessagesByQueue"][f"{queue}::{VIRTUAL_HOST}"]
    assert message["data"] == example["data"]
    assert base64.b64decode(message["data"]) == body
    assert message["redelivered"] is False
    props = message["basicProperties"]
    for key in ("contentType", "contentEncoding", "headers", "deliveryMode", "priority", "replyTo",
                "expiration", "timestamp", "type", "appId", "clusterId"):
        assert props[key] == example["basicProperties"][key], key
    assert props["correlationId"] == "corr-123"
    assert props["messageId"] == "msg-1"
    assert props["userId"] == "guest"
    assert props["bodySize"] == len(body)


def test_function_error_redelivers_then_dead_letters(
    lam: Any, make_function: Callable[..., tuple[str, Path]], queue: str,
    bridge_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    function, out = make_function()
    limit = topology.DEFAULT_DELIVERY_LIMIT
    dlq = topology.dead_letter_queue(queue)
    publish(queue, b'{"raise": true}')
    with running(Bridge(RABBITMQ_URL, lam, [Mapping(source(queue), function, BROKER_ARN)],
                        delivery_limit=limit)):
        wait_for(lambda: ready(dlq) == 1, 30, "the message in the dead-letter queue")
        assert ready(queue) == 0
        time.sleep(0.5)
        seen = invocations(out)
    assert stays(lambda: ready(queue) == 0 and ready(dlq) == 1)

    # RabbitMQ 3.10 quorum queues: each nack-requeue increments the message's delivery count
    # (sent as x-delivery-count from the first redelivery on), and a returned message whose count
    # exceeds x-delivery-limit is dead-lettered instead of requeued. So the function sees it
    # limit + 1 times: the delivery, then `limit` redeliveries. Nothing is acked along the way.
    assert len(seen) == limit + 1
    messages = [batch_of(r)[0] for r in seen]
    assert [m["redelivered"] for m in messages] == [False] + [True] * limit
    delivery_counts = [(m["basicProperties"]["headers"] or {}).get("x-delivery-count") for m in messages]
    assert delivery_counts == [None, *range(1, limit + 1)]
    assert all(base64.b64decode(m["data"]) == b'{"raise": true}' for m in messages)
    outcomes = [r for r in bridge_logs() if r["event"] == "invocation"]
    assert [r["outcome"] for r in outcomes] == ["function_error"] * (limit + 1)
    assert all(r["action"].startswith("nack") for r in outcomes)
    assert all(r["error"] == "Runtime.HandlerError: asked to fail" for r in outcomes)
    with amqp_channel() as channel:
        _method, _props, body = channel.basic_get(dlq, auto_ack=True)
    assert body == b'{"raise": true}'


# A stack with one function, deployed through the emulator's CloudFormation, and the SAM template
# the CLI reads its MQ event from: the CLI must map the logical id to the stack's physical name and
# take the queue name and broker ARN from the stack's parameters.
STACK_TEMPLATE = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Parameters": {
        "MQBrokerArn": {"Type": "String"},
        "QueueName": {"Type": "String"},
        "OutFile": {"Type": "String"},
    },
    "Resources": {
        "WorkFunction": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Runtime": "python3.11",
                "Handler": "index.handler",
                "Role": "arn:aws:iam::000000000000:role/x",
                "Timeout": 30,
                "Code": {"ZipFile": HANDLER},
                "Environment": {"Variables": {"OUT": {"Ref": "OutFile"}}},
            },
        }
    },
}

SAM_TEMPLATE = textwrap.dedent("""
    Transform: AWS::Serverless-2016-10-31
    Parameters:
      MQBrokerArn:
        Type: String
        Default: arn:aws:mq:us-east-1:000000000000:broker:template-default:b-0
      QueueName:
        Type: String
    Resources:
      WorkFunction:
        Type: AWS::Serverless::Function
        Properties:
          Handler: index.handler
          Events:
            Work:
              Type: MQ
              Properties:
                Broker: !Ref MQBrokerArn
                Queues: [!Ref QueueName]
                BatchSize: 1
                SourceAccessConfigurations:
                  - Type: VIRTUAL_HOST
                    URI: {virtual_host}
""").format(virtual_host=VIRTUAL_HOST)


def start_cli(endpoint: str, stack: str, template: Path, log: Path) -> subprocess.Popen[bytes]:
    return procs.spawn(
        [sys.executable, "-m", "infra.bridge", "--endpoint", endpoint, "--stack", stack,
         "--rabbitmq-url", RABBITMQ_URL, "--template", str(template)],
        log=log, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_sigkill_mid_invocation_loses_nothing(emulator: Emulator, queue: str, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    stack = f"bridge-test-{uuid.uuid4().hex[:8]}"
    cfn = boto3.client("cloudformation", endpoint_url=emulator.endpoint, region_name=REGION,
                       aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                       aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    cfn.create_stack(StackName=stack, TemplateBody=json.dumps(STACK_TEMPLATE), Parameters=[
        {"ParameterKey": "MQBrokerArn", "ParameterValue": BROKER_ARN},
        {"ParameterKey": "QueueName", "ParameterValue": queue},
        {"ParameterKey": "OutFile", "ParameterValue": str(out)},
    ])
    wait_for(lambda: cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE",
             60, "the stack")
    [resource] = cfn.describe_stack_resources(StackName=stack)["StackResources"]
    physical_name = resource["PhysicalResourceId"]
    template = tmp_path / "template.yaml"
    template.write_text(SAM_TEMPLATE)
    log = tmp_path / "bridge.log"
    publish(queue, b'{"sleep_first": 5}')
    name = connection_name("WorkFunction")

    first = start_cli(emulator.endpoint, stack, template, log)
    second: subprocess.Popen[bytes] | None = None
    try:
        [started] = wait_for(lambda: invocations(out), 30, "the first invocation to start")
        # Mid-invocation: delivered to the bridge and not acked.
        pid, _ = wait_for(lambda: broker_connection(name), 5, "the bridge's connection")
        assert unacked(pid) == 1
        assert ready(queue) == 0
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        # Not acked early: the broker takes the message back.
        wait_for(lambda: ready(queue) == 1, 10, "the message back in the queue")
        assert len(invocations(out)) == 1

        second = start_cli(emulator.endpoint, stack, template, log)
        wait_for(lambda: len(invocations(out)) >= 2, 30, "the redelivery")
        pid, _ = wait_for(lambda: broker_connection(name), 5, "the new connection")
        wait_for(lambda: unacked(pid) == 0, 15, "the ack")
        assert ready(queue) == 0
        os.killpg(second.pid, signal.SIGTERM)
        assert second.wait(15) == 0
        assert stays(lambda: ready(queue) == 0 and ready(topology.dead_letter_queue(queue)) == 0)
    finally:
        for proc in (first, second):
            if proc is not None:
                procs.stop_group(proc)
        cfn.delete_stack(StackName=stack)

    first_event, again = (r["event"] for r in invocations(out))
    assert first_event == started["event"]
    assert first_event["eventSourceArn"] == BROKER_ARN  # from the stack, not the template default
    assert batch_of({"event": first_event})[0]["redelivered"] is False
    assert batch_of({"event": again})[0]["redelivered"] is True
    # The lost consumer counts as a delivery (quorum queues count returns for any reason).
    assert batch_of({"event": again})[0]["basicProperties"]["headers"] == {"x-delivery-count": 1}
    assert batch_of({"event": again})[0]["data"] == batch_of({"event": first_event})[0]["data"]

    text = log.read_text()
    assert "Traceback" not in text
    lines = [json.loads(line) for line in text.splitlines()]  # every line is a JSON object
    settled = [r for r in lines if r.get("event") == "invocation"]
    assert [(r["function"], r["batch_size"], r["outcome"], r["action"]) for r in settled] == [
        (physical_name, 1, "ok", "ack")
    ]
    assert sum(1 for r in lines if r.get("event") == "bridge_stopped") == 1


def test_batch_size_and_window(
    lam: Any, make_function: Callable[..., tuple[str, Path]], queue: str
) -> None:
    function, out = make_function()
    window = 2.0
    publish(queue, *(json.dumps({"n": i}).encode() for i in range(5)))
    mapping = Mapping(source(queue, batch_size=3, window=window), function, BROKER_ARN)

    def numbers(record: dict[str, Any]) -> list[int]:
        return [json.loads(base64.b64decode(m["data"]))["n"] for m in batch_of(record)]

    with running(Bridge(RABBITMQ_URL, lam, [mapping])):
        # 5 waiting, batch size 3 (= prefetch): a full batch at once, then the 2 left after the window.
        wait_for(lambda: len(invocations(out)) >= 2, 20, "two invocations")
        first, second = invocations(out)
        assert numbers(first) == [0, 1, 2]
        assert numbers(second) == [3, 4]
        assert second["t"] - first["t"] >= window - 0.1

        # An idle consumer: one message waits out the window...
        published = time.time()
        publish(queue, b'{"n": 5}')
        wait_for(lambda: len(invocations(out)) >= 3, 10, "the windowed invocation")
        third = invocations(out)[2]
        assert numbers(third) == [5]
        assert window - 0.1 <= third["t"] - published < window + 1.5

        # ...and a full batch does not.
        published = time.time()
        publish(queue, *(json.dumps({"n": i}).encode() for i in range(6, 9)))
        wait_for(lambda: len(invocations(out)) >= 4, 10, "the full batch")
        fourth = invocations(out)[3]
        assert numbers(fourth) == [6, 7, 8]
        assert fourth["t"] - published < window - 0.5

        pid, _ = wait_for(lambda: broker_connection(connection_name(queue)), 5, "the bridge's connection")
        wait_for(lambda: unacked(pid) == 0, 10, "the acks")
    assert stays(lambda: ready(queue) == 0)
    assert len(invocations(out)) == 4


def test_heartbeats_flow_during_a_long_invocation(
    lam: Any, make_function: Callable[..., tuple[str, Path]], queue: str,
    bridge_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    function, out = make_function(timeout=20)
    publish(queue, b'{"sleep": 8}')
    mapping = Mapping(source(queue), function, BROKER_ARN)
    with running(Bridge(f"{RABBITMQ_URL}?heartbeat=2", lam, [mapping])):
        wait_for(lambda: invocations(out), 20, "the invocation to start")
        pid, heartbeat = wait_for(lambda: broker_connection(connection_name(queue)), 5, "the connection")
        assert heartbeat == 2  # the broker drops a connection silent for 2 heartbeats (4 s)
        assert unacked(pid) == 1
        wait_for(lambda: unacked(pid) == 0, 20, "the ack after 8 s")
        assert broker_connection(connection_name(queue)) == (pid, 2)  # the same connection throughout
    assert stays(lambda: ready(queue) == 0)

    records = bridge_logs()
    assert [r["event"] for r in records if r["event"] in ("connected", "connection_lost")] == ["connected"]
    [invocation] = [r for r in records if r["event"] == "invocation"]
    assert (invocation["outcome"], invocation["action"]) == ("ok", "ack")
    assert invocation["duration_ms"] >= 8000
    assert len(invocations(out)) == 1


def test_reconnects_and_never_acks_a_stale_delivery(
    lam: Any, make_function: Callable[..., tuple[str, Path]], queue: str,
    bridge_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    function, out = make_function()
    publish(queue, b'{"sleep_first": 3}')
    with running(Bridge(RABBITMQ_URL, lam, [Mapping(source(queue), function, BROKER_ARN)])):
        wait_for(lambda: invocations(out), 20, "the invocation to start")
        pid, _ = wait_for(lambda: broker_connection(connection_name(queue)), 5, "the connection")
        # The broker drops the bridge's connection mid-invocation (as a broker restart would).
        subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "test: connection dropped"],
                       check=True, capture_output=True, timeout=30)
        wait_for(lambda: len(invocations(out)) >= 2, 20, "the redelivery")
        new_pid, _ = wait_for(lambda: broker_connection(connection_name(queue)), 5, "the new connection")
        assert new_pid != pid
        wait_for(lambda: unacked(new_pid) == 0, 10, "the ack")
    assert stays(lambda: ready(queue) == 0)

    first, second = invocations(out)
    assert batch_of(first)[0]["redelivered"] is False
    assert batch_of(second)[0]["redelivered"] is True
    # One invocation at a time per mapping, across the reconnect: the redelivery waited for the
    # invocation of the lost connection to end (3 s) instead of running beside it.
    assert second["t"] - first["t"] >= 3.0
    records = bridge_logs()
    assert [r["event"] for r in records if r["event"] in ("connected", "connection_lost")] == [
        "connected", "connection_lost", "connected"
    ]
    settled = [(r["outcome"], r["action"]) for r in records if r["event"] == "invocation"]
    assert settled == [
        ("ok", "none (its connection was lost; the broker redelivers it)"),
        ("ok", "ack"),
    ]


def test_lambda_api_unavailable_holds_the_batch_without_spending_deliveries(
    lam: Any, make_function: Callable[..., tuple[str, Path]], queue: str,
    bridge_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    # The function did not run (here: it is gone, as while a redeploy replaces it), so the bridge keeps
    # the batch unacked and retries the invoke with backoff; a nack would count toward the delivery
    # limit and dead-letter a healthy message during an emulator restart.
    function, out = make_function()
    with running(Bridge(RABBITMQ_URL, lam, [Mapping(source(queue), function, BROKER_ARN)])):
        lam.delete_function(FunctionName=function)
        publish(queue, b'{"n": 1}')

        def unavailable() -> int:
            return sum(1 for r in bridge_logs()
                       if r["event"] == "invocation" and r["outcome"] == "lambda_unavailable")

        wait_for(lambda: unavailable() >= 3, 15, "three failed invokes")  # after 0, 1 and 3 s
        pid, _ = wait_for(lambda: broker_connection(connection_name(queue)), 5, "the connection")
        assert unacked(pid) == 1
        assert ready(topology.dead_letter_queue(queue)) == 0
        lam.create_function(
            FunctionName=function, Runtime="python3.11", Role="arn:aws:iam::000000000000:role/x",
            Handler="fn.handler", Code={"ZipFile": function_zip()}, Timeout=10,
            Environment={"Variables": {"OUT": str(out)}},
        )
        wait_active(lam, function)
        [record] = wait_for(lambda: invocations(out), 15, "the invocation once the function is back")
        wait_for(lambda: unacked(pid) == 0, 10, "the ack")
    assert stays(lambda: ready(queue) == 0)
    [message] = batch_of(record)
    assert message["redelivered"] is False  # held, never returned to the broker
    assert message["basicProperties"]["headers"] is None  # no x-delivery-count: no delivery spent
    settled = [(r["outcome"], r["action"].split(" ")[0]) for r in bridge_logs() if r["event"] == "invocation"]
    assert settled[-1] == ("ok", "ack")
    assert set(settled[:-1]) == {("lambda_unavailable", "retry")}

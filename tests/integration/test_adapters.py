"""The real adapters against the real services."""

import io
import json
import os

import pika
import pytest

from vid2mp3.db.postgres import Postgres
from vid2mp3.errors import DependencyUnavailable
from vid2mp3.objectstore.gridfs import GridFSStore
from vid2mp3.queue import topology
from vid2mp3.queue.rabbitmq import RabbitMQPublisher


class Exploding(io.BytesIO):
    def __init__(self, data: bytes, fail_after: int) -> None:
        super().__init__(data)
        self.fail_after = fail_after

    def read(self, size: int = -1) -> bytes:
        if self.tell() >= self.fail_after:
            raise OSError("client went away")
        return super().read(size)


@pytest.fixture
def store(mongo_uri):
    store = GridFSStore(mongo_uri, "vid2mp3_test")
    yield store
    store.close()


def test_gridfs_round_trip_is_byte_identical(store):
    data = os.urandom(3 * 1024 * 1024 + 17)
    stored = store.put("videos", "obj-1", io.BytesIO(data), filename="a.mp4", metadata={"owner": "u1"})
    assert stored.length == len(data)
    assert b"".join(store.read("videos", "obj-1")) == data
    assert b"".join(store.read("videos", "obj-1", 1000, 300_000)) == data[1000:300_000]
    meta = store.stat("videos", "obj-1")
    assert meta is not None and meta.metadata["owner"] == "u1" and meta.filename == "a.mp4"
    with pytest.raises(FileExistsError):
        store.put("videos", "obj-1", io.BytesIO(b"x"), filename="a.mp4", metadata={})
    store.delete("videos", "obj-1")
    assert store.stat("videos", "obj-1") is None
    with pytest.raises(KeyError):
        store.read("videos", "obj-1")


def test_gridfs_failed_write_leaves_no_chunks(store):
    with pytest.raises(OSError):
        store.put("videos", "obj-2", Exploding(os.urandom(4 * 1024 * 1024), 2 * 1024 * 1024),
                  filename="b.mp4", metadata={})
    db = store._db  # the test looks at the collections directly
    assert db["videos.chunks"].count_documents({"files_id": "obj-2"}) == 0
    assert db["videos.files"].count_documents({"_id": "obj-2"}) == 0


def test_unreachable_mongodb_is_dependency_unavailable():
    store = GridFSStore("mongodb://127.0.0.1:1/?directConnection=true", "x", timeout_ms=300)
    with pytest.raises(DependencyUnavailable):
        store.ping()
    store.close()


def test_publisher_confirms_a_persistent_message(rabbitmq_url):
    queue = "test_publish_confirm"
    publisher = RabbitMQPublisher(rabbitmq_url)
    conn = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    ch = conn.channel()
    ch.queue_delete(queue)
    ch.queue_delete(topology.dead_letter_queue(queue))
    try:
        publisher.publish(queue, {"job_id": "j1"}, correlation_id="corr-123")
        method, props, body = ch.basic_get(queue, auto_ack=True)
        assert method is not None
        assert json.loads(body) == {"job_id": "j1"}
        assert props.correlation_id == "corr-123"
        assert props.delivery_mode == 2
        assert props.content_type == "application/json"
        args = ch.queue_declare(queue, passive=True)
        assert args.method.message_count == 0
    finally:
        ch.queue_delete(queue)
        ch.queue_delete(topology.dead_letter_queue(queue))
        conn.close()
        publisher.close()


def test_unreachable_broker_is_dependency_unavailable():
    publisher = RabbitMQPublisher("amqp://guest:guest@127.0.0.1:1/%2F", connect_timeout=0.5)
    with pytest.raises(DependencyUnavailable):
        publisher.publish("q", {}, correlation_id="c")


def test_postgres_ping_and_unreachable(pg_url):
    Postgres(pg_url).ping()
    with pytest.raises(DependencyUnavailable):
        Postgres("postgresql://postgres@127.0.0.1:1/x", connect_timeout=1).ping()


def test_a_dead_letter_queue_can_be_consumed_like_a_work_queue(rabbitmq_url):
    """The bridge declares each mapped queue; a `.dlq` keeps its own arguments (no precondition clash)."""
    queue = "test_dlq_declare"
    conn = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    ch = conn.channel()
    try:
        topology.declare(ch, queue, delivery_limit=1)
        topology.declare(ch, topology.dead_letter_queue(queue))
        ch.confirm_delivery()
        ch.basic_publish("", queue, b"poison", pika.BasicProperties(delivery_mode=2))
        for _ in range(2):  # the limit is 1: the second nack dead-letters it
            method, _, _ = ch.basic_get(queue)
            assert method is not None
            ch.basic_nack(method.delivery_tag, requeue=True)
        for _ in range(50):
            method, _, body = ch.basic_get(topology.dead_letter_queue(queue), auto_ack=True)
            if method is not None:
                break
            conn.sleep(0.1)
        assert body == b"poison"
    finally:
        ch.queue_delete(queue)
        ch.queue_delete(topology.dead_letter_queue(queue))
        conn.close()

"""The real adapters against the real services."""

import io
import json
import os
import time

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


CHUNK = 255 * 1024


def test_gridfs_failed_write_after_some_batches_leaves_no_chunks(store):
    """The failure comes after several batches of chunks were inserted: they are all deleted."""
    with pytest.raises(OSError):
        store.put("videos", "obj-3", Exploding(os.urandom(40 * CHUNK), 37 * CHUNK + 5), filename="c.mp4",
                  metadata={})
    db = store._db
    assert db["videos.chunks"].count_documents({"files_id": "obj-3"}) == 0
    assert db["videos.files"].count_documents({"_id": "obj-3"}) == 0
    # and the id is free again
    store.put("videos", "obj-3", io.BytesIO(b"again"), filename="c.mp4", metadata={})
    assert b"".join(store.read("videos", "obj-3")) == b"again"
    store.delete("videos", "obj-3")


def test_gridfs_duplicate_put_leaves_the_existing_object_whole(store):
    data = os.urandom(3 * CHUNK + 1)
    store.put("videos", "obj-4", io.BytesIO(data), filename="d.mp4", metadata={"v": 1})
    for attempt in (b"x", os.urandom(20 * CHUNK)):
        with pytest.raises(FileExistsError):
            store.put("videos", "obj-4", io.BytesIO(attempt), filename="other.mp4", metadata={"v": 2})
    assert b"".join(store.read("videos", "obj-4")) == data
    meta = store.stat("videos", "obj-4")
    assert meta is not None and meta.metadata == {"v": 1} and meta.length == len(data)
    store.delete("videos", "obj-4")


def test_gridfs_orphan_chunks_make_a_put_fail_without_deleting_them(store):
    """Chunks without a files document (a writer killed midway, or one still writing): not ours."""
    store._db["videos.chunks"].insert_one({"files_id": "obj-5", "n": 0, "data": b"theirs"})
    with pytest.raises(FileExistsError):
        store.put("videos", "obj-5", io.BytesIO(b"mine"), filename="e.mp4", metadata={})
    assert store._db["videos.chunks"].count_documents({"files_id": "obj-5"}) == 1
    assert store.stat("videos", "obj-5") is None
    store.delete("videos", "obj-5")


@pytest.mark.parametrize("length", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 17 * CHUNK + 123])
def test_gridfs_ranged_reads(store, length):
    data = os.urandom(length)
    store.put("videos", f"len-{length}", io.BytesIO(data), filename="f", metadata={})
    for start, end in [(0, None), (0, 1), (1, CHUNK), (CHUNK - 1, CHUNK + 1), (CHUNK, 2 * CHUNK),
                       (2 * CHUNK + 7, 5 * CHUNK - 3), (length, None), (length + 10, length + 20), (5, 5)]:
        pieces = list(store.read("videos", f"len-{length}", start, end))
        assert b"".join(pieces) == data[start:end]
        assert all(0 < len(p) <= CHUNK for p in pieces)
    assert store.stat("videos", f"len-{length}").length == length
    store.delete("videos", f"len-{length}")


def test_gridfs_layout_is_standard_both_ways(store):
    """What the adapter writes, GridFSBucket reads, and the other way round."""
    import gridfs

    bucket = gridfs.GridFSBucket(store._db, bucket_name="videos")
    data = os.urandom(5 * CHUNK + 99)
    store.put("videos", "obj-6", io.BytesIO(data), filename="g.mp4", metadata={"k": "v"})
    out = bucket.open_download_stream("obj-6")
    assert out.read() == data and out.filename == "g.mp4" and out.metadata == {"k": "v"}
    bucket.upload_from_stream_with_id("obj-7", "h.mp4", io.BytesIO(data), metadata={"k": "w"})
    assert b"".join(store.read("videos", "obj-7", 10)) == data[10:]
    assert store.stat("videos", "obj-7").metadata == {"k": "w"}
    for object_id in ("obj-6", "obj-7"):
        store.delete("videos", object_id)


def test_gridfs_first_write_creates_the_spec_indexes(store):
    """Like GridFSBucket: on an empty bucket; the unique (files_id, n) index is what makes a second
    writer of an id fail instead of interleaving its chunks."""
    bucket = f"fresh{os.getpid()}"
    store.put(bucket, "obj-9", io.BytesIO(b"x" * 10), filename="j", metadata={})
    chunks = {ix["name"]: ix for ix in store._db[f"{bucket}.chunks"].list_indexes()}
    assert any(dict(ix["key"]) == {"files_id": 1, "n": 1} and ix.get("unique") for ix in chunks.values())
    files = [dict(ix["key"]) for ix in store._db[f"{bucket}.files"].list_indexes()]
    assert {"filename": 1, "uploadDate": 1} in files
    store._db.drop_collection(f"{bucket}.chunks")
    store._db.drop_collection(f"{bucket}.files")


def test_gridfs_missing_chunk_is_an_error_not_a_short_object(store):
    import gridfs.errors

    store.put("videos", "obj-8", io.BytesIO(os.urandom(4 * CHUNK)), filename="i", metadata={})
    store._db["videos.chunks"].delete_one({"files_id": "obj-8", "n": 2})
    with pytest.raises(gridfs.errors.CorruptGridFile):
        b"".join(store.read("videos", "obj-8"))
    assert b"".join(store.read("videos", "obj-8", 3 * CHUNK)) != b""  # a range without the hole reads
    store._db["videos.chunks"].delete_one({"files_id": "obj-8", "n": 3})  # the last one missing too
    with pytest.raises(gridfs.errors.CorruptGridFile):
        b"".join(store.read("videos", "obj-8", 3 * CHUNK))
    store.delete("videos", "obj-8")


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


def test_gridfs_replace_chunk_touches_only_its_chunk(store):
    from vid2mp3.objectstore import CHUNK_SIZE

    data = bytearray(os.urandom(3 * CHUNK_SIZE + 99))
    store.write_chunks("mp3s", "early-1", 0, bytes(data))
    data[CHUNK_SIZE:2 * CHUNK_SIZE] = os.urandom(CHUNK_SIZE)
    store.replace_chunk("mp3s", "early-1", 1, bytes(data[CHUNK_SIZE:2 * CHUNK_SIZE]))
    store.replace_chunk("mp3s", "early-1", 3, bytes(data[3 * CHUNK_SIZE:]))  # the same again: no duplicate
    store.seal("mp3s", "early-1", len(data), filename="a.mp3", metadata={})
    assert b"".join(store.read("mp3s", "early-1")) == bytes(data)
    store.delete("mp3s", "early-1")


def test_gridfs_mp3_sent_while_written_is_the_finished_file(store, tmp_path):
    """vid2mp3.convert.early against GridFS: chunks sent while the file grows, the start rewritten."""
    from vid2mp3.convert.early import EarlyMp3
    from vid2mp3.objectstore import CHUNK_SIZE

    path, data = tmp_path / "audio.mp3", bytearray(os.urandom(6 * CHUNK_SIZE + 5))
    with EarlyMp3(store, "mp3s", "early-2", path, poll_s=0.01) as early:
        with open(path, "ab") as f:
            for at in range(0, len(data), 64 * 1024):
                f.write(data[at:at + 64 * 1024])
                f.flush()
                time.sleep(0.01)
        deadline = time.monotonic() + 10
        while 5 not in early.sent:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert store.stat("mp3s", "early-2") is None
    data[0:100] = b"\x00" * 100
    path.write_bytes(bytes(data))
    early.finish(filename="a.mp3", metadata={"job_id": "j"})
    assert b"".join(store.read("mp3s", "early-2")) == bytes(data)
    store.delete("mp3s", "early-2")

import json

from chalice.test import Client

from vid2mp3.bootstrap import bootstrap
from vid2mp3.objectstore.memory import InMemoryObjectStore
from vid2mp3.queue.memory import InMemoryPublisher
from vid2mp3.settings import load_settings


class FakeDb:
    def __init__(self, up=True):
        self.up = up

    def ping(self):
        from vid2mp3.errors import DependencyUnavailable

        if not self.up:
            raise DependencyUnavailable("The database is unavailable.")


def _client(monkeypatch, *, db_up=True, store_up=True, mq_up=True):
    from functions.upload import videos

    deps = bootstrap(
        load_settings({}),
        db=FakeDb(db_up),  # type: ignore[arg-type]
        store=InMemoryObjectStore(available=store_up),
        publisher=InMemoryPublisher(available=mq_up),
    )
    monkeypatch.setattr(videos.wiring, "shared", deps)
    return Client(videos.app)


def test_health_ok_when_every_dependency_answers(monkeypatch):
    with _client(monkeypatch) as client:
        r = client.http.get("/health")
    assert r.status_code == 200
    body = json.loads(r.body)
    assert body["status"] == "ok"
    assert {k: v["status"] for k, v in body["checks"].items()} == {
        "postgres": "ok", "mongodb": "ok", "rabbitmq": "ok"}


def test_health_503_names_the_failing_dependency(monkeypatch):
    with _client(monkeypatch, store_up=False) as client:
        r = client.http.get("/health")
    assert r.status_code == 503
    body = json.loads(r.body)
    assert body["checks"]["mongodb"]["status"] == "unavailable"
    assert body["checks"]["postgres"]["status"] == "ok"
    assert body["error"] == {"code": "dependency_unavailable", "message": "Unavailable: mongodb."}

"""The upload function's routes, driven with API Gateway proxy events, over in-memory fakes.

Events are built as API Gateway (and MiniStack) build them: a multipart body base64-encoded with
isBase64Encoded, the authorizer's context under requestContext.authorizer.
"""

from __future__ import annotations

import dataclasses
import os
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.apigw import ALICE, BOB, Result, apigw_event, fake_probe, multipart_body
from vid2mp3.auth.identity import Identity
from vid2mp3.bootstrap import bootstrap
from vid2mp3.exports.memory import InMemoryExporter
from vid2mp3.jobs import Mp3Info, service
from vid2mp3.jobs.memory import InMemoryJobRepository
from vid2mp3.objectstore import MP3S_BUCKET, VIDEOS_BUCKET
from vid2mp3.objectstore.memory import InMemoryObjectStore
from vid2mp3.queue.memory import InMemoryPublisher
from vid2mp3.queue.topology import VIDEO_CONVERSION_QUEUE
from vid2mp3.settings import load_settings


class World:
    def __init__(self, monkeypatch, **settings: str) -> None:
        from functions.upload import app as upload
        from functions.upload import videos

        self.app, self.videos = upload, videos
        self.settings = load_settings({"PUBLIC_BASE_URL": "http://api.test/v1", **settings})
        self.jobs = InMemoryJobRepository()
        self.store = InMemoryObjectStore()
        self.publisher = InMemoryPublisher()
        deps = bootstrap(self.settings, db=object(), store=self.store, publisher=self.publisher)  # type: ignore[arg-type]
        self.deps = service.JobsDeps(settings=self.settings, jobs=self.jobs, store=self.store,
                                     publisher=self.publisher, logger=upload.logger, probe=fake_probe)
        for module in (upload, videos):  # the upload function's and the videos function's
            monkeypatch.setattr(module.wiring, "shared", deps)
            monkeypatch.setattr(module.wiring, "jobs", self.deps)
        self.monkeypatch = monkeypatch

    def call(self, method: str, resource: str, **kw: Any) -> Result:
        """Through the function the template routes it to: POST /videos to upload, the rest to videos."""
        module = self.app if (method, resource) == ("POST", "/videos") else self.videos
        return Result(module.handler(apigw_event(method, resource, **kw), None))

    def use_exporter(self, exporter: InMemoryExporter) -> None:
        self.deps = dataclasses.replace(self.deps, exporter=exporter)
        for module in (self.app, self.videos):
            self.monkeypatch.setattr(module.wiring, "jobs", self.deps)

    def upload(self, data: bytes | None = b"MEDIA" + b"x" * 100, caller: Identity = ALICE,
               fields: dict[str, str] | None = None, headers: dict[str, str] | None = None, **kw: Any) -> Result:
        body, ctype = multipart_body(data, fields=fields, **kw)
        return self.call("POST", "/videos", caller=caller, body=body,
                         headers={"Content-Type": ctype, **(headers or {})})

    def finish(self, job_id: str, mp3: bytes) -> None:
        import io

        self.store.put(MP3S_BUCKET, job_id, io.BytesIO(mp3), filename="x.mp3", metadata={})
        assert self.jobs.start_conversion(job_id) is not None
        assert self.jobs.mark_done(job_id, Mp3Info(job_id, len(mp3), 3.0, "192k"))


@pytest.fixture
def world(monkeypatch) -> World:
    return World(monkeypatch)


# --- POST /videos ----------------------------------------------------------------------------------


def test_upload_stores_video_creates_job_publishes_and_answers_202(world):
    data = b"MEDIA" + bytes(range(256)) * 50
    r = world.upload(data, fields={"bitrate": "128k"}, filename="Café.mp4",
                     headers={"X-Correlation-Id": "corr-abcdef12"})
    assert r.status == 202, r.body
    body = r.json()
    assert body["status"] == "queued" and body["filename"] == "Café.mp4" and body["size"] == len(data)
    assert body["bitrate"] == "128k"
    assert r.headers["location"] == f"http://api.test/v1/videos/{body['id']}"
    job = world.jobs.get(body["id"])
    assert job is not None and job.owner_id == ALICE.user_id and job.owner_email == ALICE.email
    assert job.correlation_id == "corr-abcdef12" and job.published_at is not None
    obj, stored = world.store.objects[(VIDEOS_BUCKET, job.video_id)]
    assert stored == data
    import hashlib

    assert obj.metadata["sha256"] == hashlib.sha256(data).hexdigest() == job.sha256
    assert obj.metadata["owner_id"] == ALICE.user_id and obj.metadata["filename"] == "Café.mp4"
    [msg] = world.publisher.messages
    assert msg.queue == VIDEO_CONVERSION_QUEUE and msg.correlation_id == "corr-abcdef12"
    assert msg.body == {"job_id": job.id, "video_id": job.video_id, "user_id": ALICE.user_id,
                        "email": ALICE.email, "filename": "Café.mp4", "options": {"bitrate": "128k"},
                        "correlation_id": "corr-abcdef12"}


def test_upload_without_confirm_still_202_and_the_redrive_publishes_once(world):
    world.publisher.available = False
    r = world.upload()
    assert r.status == 202
    job_id = r.json()["id"]
    job = world.jobs.get(job_id)
    assert job is not None and job.published_at is None and job.status == "queued"
    assert world.publisher.messages == []
    world.publisher.available = True
    # Too fresh for the re-drive.
    assert service.redrive(world.deps).published == []
    world.jobs.clock = lambda: datetime.now(UTC) + timedelta(minutes=10)
    assert service.redrive(world.deps).published == [job_id]
    assert service.redrive(world.deps).published == []
    assert [m.body["job_id"] for m in world.publisher.messages] == [job_id]
    job = world.jobs.get(job_id)
    assert job is not None and job.published_at is not None


@pytest.mark.parametrize(("data", "status", "code"), [
    (None, 400, "file_missing"),
    (b"", 400, "empty_file"),
    (b"just some text", 415, "not_media"),
    (b"NOAUDIO video", 422, "no_audio_stream"),
])
def test_rejected_uploads_store_nothing(world, data, status, code):
    r = world.upload(data)
    assert r.status == status, r.body
    assert r.json()["error"]["code"] == code
    assert world.store.objects == {} and world.jobs.rows == {} and world.publisher.messages == []


def test_upload_over_the_limit_is_413_and_stores_nothing(monkeypatch):
    world = World(monkeypatch, MAX_UPLOAD_BYTES="1000")
    assert world.upload(b"MEDIA" + b"x" * 995).status == 202  # exactly the limit
    r = world.upload(b"MEDIA" + b"x" * 996)
    assert r.status == 413 and r.json()["error"]["code"] == "payload_too_large"
    r = world.upload(b"MEDIA" + b"x" * 200_000)  # refused on length alone, before parsing
    assert r.status == 413
    assert len(world.store.objects) == 1 and len(world.jobs.rows) == 1


def test_bad_bitrate_and_bad_requests(world):
    r = world.upload(fields={"bitrate": "1000k"})
    assert r.status == 400 and r.json()["error"]["code"] == "invalid_bitrate"
    assert world.upload(fields={"bitrate": "320"}).json()["bitrate"] == "320k"
    r = world.call("POST", "/videos", body=b'{"a": 1}', headers={"Content-Type": "application/json"})
    assert r.status == 415
    body, ctype = multipart_body(b"MEDIA" + b"x" * 100)
    r = world.call("POST", "/videos", body=body[:-40], headers={"Content-Type": ctype})
    assert r.status == 400 and r.json()["error"]["code"] == "invalid_multipart"
    assert len(world.jobs.rows) == 1


def test_no_authorizer_context_is_401(world):
    r = world.upload(caller=None)  # type: ignore[arg-type]
    assert r.status == 401
    assert world.call("GET", "/videos", caller=None).status == 401


# --- GET /videos, GET /videos/{id} ---------------------------------------------------------------


def test_list_is_newest_first_paginated_and_only_mine(world):
    ids = [world.upload().json()["id"] for _ in range(5)]
    world.upload(caller=BOB)
    seen, cursor = [], None
    while True:
        r = world.call("GET", "/videos", query={"limit": "2", **({"cursor": cursor} if cursor else {})})
        assert r.status == 200
        page = r.json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    assert len(world.call("GET", "/videos").json()["items"]) == 5
    assert world.call("GET", "/videos", query={"limit": "1000"}).status == 200
    for bad in ({"limit": "0"}, {"limit": "x"}, {"cursor": "garbage!"}, {"cursor": "Zm9v"}):
        r = world.call("GET", "/videos", query=bad)
        assert r.status == 400, bad


def test_status_and_ownership(world):
    job_id = world.upload().json()["id"]
    r = world.call("GET", "/videos/{id}", path_id=job_id)
    assert r.status == 200 and r.json()["status"] == "queued"
    world.jobs.start_conversion(job_id)
    world.jobs.set_progress(job_id, 42)
    assert world.call("GET", "/videos/{id}", path_id=job_id).json()["progress"] == 42
    for resource in ("/videos/{id}", "/videos/{id}/mp3"):
        for caller, path_id in ((BOB, job_id), (ALICE, str(uuid.uuid4())), (ALICE, "not-a-uuid")):
            r = world.call("GET", resource, path_id=path_id, caller=caller, headers={"Accept": "*/*"})
            assert r.status == 404, (resource, caller, path_id)
            assert r.json()["error"]["code"] == "not_found"
    assert world.call("DELETE", "/videos/{id}", path_id=job_id, caller=BOB).status == 404
    assert world.jobs.get(job_id) is not None


def test_failed_job_shows_its_error(world):
    job_id = world.upload().json()["id"]
    world.jobs.mark_failed(job_id, "no_audio_stream", "No audio.")
    body = world.call("GET", "/videos/{id}", path_id=job_id).json()
    assert body["status"] == "failed" and body["error"] == {"code": "no_audio_stream", "message": "No audio."}
    r = world.call("GET", "/videos/{id}/mp3", path_id=job_id, headers={"Accept": "audio/mpeg"})
    assert r.status == 409 and r.json()["error"]["code"] == "conversion_failed"


# --- GET /videos/{id}/mp3 --------------------------------------------------------------------------


def test_download_full_range_and_conditions(world):
    job_id = world.upload(filename="Mon clip d'été.mov").json()["id"]
    r = world.call("GET", "/videos/{id}/mp3", path_id=job_id, headers={"Accept": "*/*"})
    assert r.status == 409 and r.json()["error"]["code"] == "not_ready"
    mp3 = bytes(range(256)) * 40
    world.finish(job_id, mp3)
    assert world.call("GET", "/videos/{id}", path_id=job_id).json()["mp3"] == {
        "size": len(mp3), "duration_s": 3.0, "bitrate": "192k"}

    r = world.call("GET", "/videos/{id}/mp3", path_id=job_id, headers={"Accept": "*/*"})
    assert r.status == 200 and r.body == mp3 and r.raw["isBase64Encoded"] is True
    assert r.headers["content-type"] == "audio/mpeg" and "content-length" not in r.headers  # the gateway's
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-disposition"] == (
        "attachment; filename=\"Mon clip dete.mp3\"; filename*=UTF-8''Mon%20clip%20d%C3%A9t%C3%A9.mp3")
    etag = r.headers["etag"]

    r = world.call("GET", "/videos/{id}/mp3", path_id=job_id,
                   headers={"Accept": "audio/mpeg", "Range": "bytes=100-299"})
    assert r.status == 206 and r.body == mp3[100:300]
    assert r.headers["content-range"] == f"bytes 100-299/{len(mp3)}"
    r = world.call("GET", "/videos/{id}/mp3", path_id=job_id, headers={"Accept": "*/*", "Range": "bytes=-10"})
    assert r.status == 206 and r.body == mp3[-10:]
    r = world.call("GET", "/videos/{id}/mp3", path_id=job_id,
                   headers={"Accept": "*/*", "Range": f"bytes={len(mp3)}-"})
    assert r.status == 416 and r.headers["content-range"] == f"bytes */{len(mp3)}"
    r = world.call("GET", "/videos/{id}/mp3", path_id=job_id,
                   headers={"Accept": "*/*", "Range": "bytes=0-1", "If-Range": '"stale"'})
    assert r.status == 200 and r.body == mp3
    r = world.call("GET", "/videos/{id}/mp3", path_id=job_id, headers={"Accept": "*/*", "If-None-Match": etag})
    assert r.status == 304 and r.body == b""
    for accept in (None, "text/html", "audio/*"):
        r = world.call("GET", "/videos/{id}/mp3", path_id=job_id, headers={"Accept": accept} if accept else {})
        assert r.status == 400 and r.json()["error"]["code"] == "not_acceptable"


def test_a_large_mp3_is_served_in_ranges_of_at_most_4_mib_and_redirected_whole(world):
    exporter = InMemoryExporter()
    world.use_exporter(exporter)
    job_id = world.upload(filename="Concert.mkv").json()["id"]
    mp3 = os.urandom(9 * 1024 * 1024 + 5)
    world.finish(job_id, mp3)
    # A Range asking for more than 4 MiB gets 4 MiB, and says so (RFC 9110 lets the server send less).
    r = world.call("GET", "/videos/{id}/mp3", path_id=job_id, headers={"Accept": "*/*", "Range": "bytes=0-"})
    assert r.status == 206 and r.body == mp3[:4 * 1024 * 1024]
    assert r.headers["content-range"] == f"bytes 0-4194303/{len(mp3)}"
    r = world.call("GET", "/videos/{id}/mp3", path_id=job_id,
                   headers={"Accept": "*/*", "Range": "bytes=8388608-"})
    assert r.status == 206 and r.body == mp3[8388608:]
    # A plain GET: a redirect to a short-lived link of an export copy with the same file name.
    r = world.call("GET", "/videos/{id}/mp3", path_id=job_id, headers={"Accept": "*/*"})
    assert r.status == 302 and r.body == b"" and r.headers["cache-control"] == "no-store"
    assert exporter.objects[f"mp3/{job_id}.mp3"] == mp3
    assert "Concert.mp3" in urllib.parse.unquote(r.headers["location"])
    # The copy is made once; the next download only gets a new link.
    world.call("GET", "/videos/{id}/mp3", path_id=job_id, headers={"Accept": "*/*"})
    assert exporter.exports == 1
    # A client that cannot send a token with the download (a page's link, <audio src>) asks for the link.
    r = world.call("GET", "/videos/{id}/mp3", path_id=job_id, headers={"Accept": "application/json"})
    assert r.status == 200 and r.headers["cache-control"] == "no-store"
    link = r.json()
    assert link["size"] == len(mp3) and link["filename"] == "Concert.mp3" and link["expires_in"] == 300
    assert link["url"].startswith(exporter.base_url) and exporter.exports == 1
    # Deleting the job removes the copy too.
    assert world.call("DELETE", "/videos/{id}", path_id=job_id).status == 204
    assert exporter.objects == {}


def test_a_delete_goes_through_while_the_export_storage_is_down(world):
    exporter = InMemoryExporter()
    world.use_exporter(exporter)
    job_id = world.upload().json()["id"]
    world.finish(job_id, bytes(5 * 1024 * 1024))
    assert world.call("GET", "/videos/{id}/mp3", path_id=job_id, headers={"Accept": "*/*"}).status == 302
    exporter.available = False  # the copy expires by the bucket's lifecycle rule; the delete is not refused
    assert world.call("DELETE", "/videos/{id}", path_id=job_id).status == 204
    assert world.store.objects == {}


def test_without_export_storage_a_large_mp3_is_downloaded_in_ranges(world):
    job_id = world.upload().json()["id"]
    world.finish(job_id, bytes(5 * 1024 * 1024))
    r = world.call("GET", "/videos/{id}/mp3", path_id=job_id, headers={"Accept": "*/*"})
    assert r.status == 413 and r.json()["error"]["code"] == "use_range_requests"
    assert "Range" in r.json()["error"]["message"]


# --- DELETE /videos/{id} --------------------------------------------------------------------------


def test_delete_removes_everything_and_is_idempotent(world):
    job_id = world.upload().json()["id"]
    world.finish(job_id, b"ID3" + b"\0" * 100)
    job = world.jobs.get(job_id)
    assert job is not None and len(world.store.objects) == 2
    r = world.call("DELETE", "/videos/{id}", path_id=job_id)
    assert r.status == 204 and r.body == b""
    assert world.store.objects == {}
    assert world.call("GET", "/videos/{id}", path_id=job_id).status == 404
    assert world.call("GET", "/videos").json()["items"] == []
    assert world.call("DELETE", "/videos/{id}", path_id=job_id).status == 204  # again
    assert world.call("DELETE", "/videos/{id}", path_id=str(uuid.uuid4())).status == 404
    # The tombstone goes after a while, with the objects once more.
    world.jobs.clock = lambda: datetime.now(UTC) + timedelta(hours=2)
    assert service.redrive(world.deps).purged == [job_id]
    assert world.jobs.rows == {}


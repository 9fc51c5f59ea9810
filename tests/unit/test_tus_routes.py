"""The tus routes of the upload function, driven through its Lambda handler with API Gateway events over
in-memory fakes: the wire format a tus client relies on (headers, statuses, method override, CORS)."""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

import pytest

from tests.support.apigw import ALICE, BOB, Result, apigw_event
from tests.unit.test_uploads_service import probe
from vid2mp3.bootstrap import bootstrap
from vid2mp3.jobs import service
from vid2mp3.jobs.memory import InMemoryJobRepository
from vid2mp3.objectstore.memory import InMemoryObjectStore
from vid2mp3.queue.memory import InMemoryPublisher
from vid2mp3.settings import load_settings
from vid2mp3.uploads import service as uploads
from vid2mp3.uploads.memory import InMemoryUploadRepository

MIB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}


class Tus:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, **settings: str) -> None:
        from functions.upload import app as upload

        self.app = upload
        self.settings = load_settings({"PUBLIC_BASE_URL": "https://api.test/v1", **settings})
        store, publisher = InMemoryObjectStore(), InMemoryPublisher()
        deps = bootstrap(self.settings, db=object(), store=store, publisher=publisher)  # type: ignore[arg-type]
        jobs = service.JobsDeps(settings=self.settings, jobs=InMemoryJobRepository(), store=store,
                                publisher=publisher, logger=upload.logger, probe=probe)
        self.deps = uploads.UploadsDeps(jobs=jobs, uploads=InMemoryUploadRepository())
        monkeypatch.setattr(upload.wiring, "shared", deps)
        monkeypatch.setattr(upload.wiring, "jobs", jobs)
        monkeypatch.setattr(upload.wiring, "uploads", self.deps)

    def call(self, method: str, resource: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
             **kw: Any) -> Result:
        event = apigw_event(method, resource, headers=headers, **kw)
        if body is not None:  # API Gateway base64-encodes it (the template's binary media types)
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
        return Result(self.app.handler(event, None))

    def create(self, length: int, caller: Any = ALICE, **headers: str) -> Result:
        return self.call("POST", "/uploads", caller=caller, headers={**TUS, "Upload-Length": str(length), **headers})

    def patch(self, upload_id: str, offset: int, data: bytes, caller: Any = ALICE, **headers: str) -> Result:
        return self.call("PATCH", "/uploads/{id}", path_id=upload_id, caller=caller, body=data,
                         headers={**TUS, **OCTETS, "Upload-Offset": str(offset), **headers})


@pytest.fixture
def tus(monkeypatch) -> Tus:
    return Tus(monkeypatch)


def upload_id(created: Result) -> str:
    return created.headers["location"].rsplit("/", 1)[1]


def test_options_answers_without_a_token_with_the_servers_capabilities(tus):
    r = tus.call("OPTIONS", "/uploads", caller=None, headers={"Origin": "https://app.example"})
    assert r.status == 204 and r.body == b""
    assert r.headers["tus-resumable"] == "1.0.0" and r.headers["tus-version"] == "1.0.0"
    assert r.headers["tus-max-size"] == str(2 * 1024**3)
    assert "creation-with-upload" in r.headers["tus-extension"] and "sha1" in r.headers["tus-checksum-algorithm"]
    assert r.headers["access-control-allow-origin"] == "*"
    assert "PATCH" in r.headers["access-control-allow-methods"]
    assert "upload-offset" in r.headers["access-control-allow-headers"].lower()


def test_create_then_patch_then_head_like_a_tus_client(tus):
    data = b"MEDIA" + os.urandom(3 * MIB)
    created = tus.create(len(data), **{"Upload-Metadata": "filename Y2xpcC5ta3Y="})
    assert created.status == 201, created.body
    location = created.headers["location"]
    assert location.startswith("https://api.test/v1/uploads/")  # the stage path is kept
    assert created.headers["tus-resumable"] == "1.0.0" and "upload-expires" in created.headers
    uid = upload_id(created)
    first = tus.patch(uid, 0, data[:2 * MIB], **{"Upload-Checksum": "sha1 " + base64.b64encode(
        hashlib.sha1(data[:2 * MIB]).digest()).decode()})
    assert first.status == 204, first.body
    assert first.headers["upload-offset"] == str(2 * MIB) and "upload-expires" in first.headers
    head = tus.call("HEAD", "/uploads/{id}", path_id=uid, headers=TUS)
    assert head.status == 200 and head.body == b""
    assert head.headers["upload-offset"] == str(2 * MIB) and head.headers["upload-length"] == str(len(data))
    assert head.headers["cache-control"] == "no-store" and head.headers["upload-metadata"] == "filename Y2xpcC5ta3Y="
    last = tus.patch(uid, 2 * MIB, data[2 * MIB:])
    assert last.status == 204 and last.headers["upload-offset"] == str(len(data))
    # The job the upload became, named on the last PATCH and on HEAD from then on.
    assert last.headers["vid2mp3-job"] == f"https://api.test/v1/videos/{uid}"
    assert "upload-expires" not in last.headers
    again = tus.call("HEAD", "/uploads/{id}", path_id=uid, headers=TUS)
    assert again.headers["vid2mp3-job"] == f"https://api.test/v1/videos/{uid}"


@pytest.mark.parametrize(("headers", "status", "code"), [
    ({"Tus-Resumable": "0.2.2"}, 412, "tus_version_unsupported"),
    ({"Tus-Resumable": ""}, 412, "tus_version_unsupported"),
    ({"Content-Type": "application/json"}, 415, "wrong_content_type"),
    ({"Upload-Offset": "12"}, 409, "offset_mismatch"),
    ({"Upload-Offset": "-1"}, 400, "invalid_upload_offset"),
    ({"Upload-Checksum": "sha1 " + base64.b64encode(b"x" * 20).decode()}, 460, "checksum_mismatch"),
    ({"Upload-Checksum": "crc32 AAAA"}, 400, "checksum_algorithm_unsupported"),
])
def test_bad_patches_get_their_status_in_the_error_shape_with_tus_resumable(tus, headers, status, code):
    uid = upload_id(tus.create(MIB))
    r = tus.patch(uid, 0, b"MEDIA" + b"x" * 1000, **headers)
    assert r.status == status, r.body
    assert r.json() == {"error": {"code": code, "message": r.json()["error"]["message"]}}
    assert r.headers["tus-resumable"] == "1.0.0"
    assert tus.call("HEAD", "/uploads/{id}", path_id=uid, headers=TUS).headers["upload-offset"] == "0"


def test_a_version_412_names_the_version_the_server_speaks(tus):
    r = tus.create(MIB, **{"Tus-Resumable": "2.0.0"})
    assert r.status == 412 and r.headers["tus-version"] == "1.0.0"


def test_over_the_maximum_is_413_at_creation(tus):
    r = tus.create(2 * 1024**3 + 1)
    assert r.status == 413 and r.json()["error"]["code"] == "upload_too_large"


def test_a_part_over_4_mib_is_413_naming_the_limit(tus):
    uid = upload_id(tus.create(8 * MIB))
    r = tus.patch(uid, 0, b"MEDIA" + bytes(4 * MIB))
    assert r.status == 413 and "4 MiB" in r.json()["error"]["message"]


def test_method_override_turns_a_post_into_patch_head_and_delete(tus):
    data = b"MEDIA" + os.urandom(MIB)
    uid = upload_id(tus.create(len(data)))
    r = tus.call("POST", "/uploads/{id}", path_id=uid, body=data[:1000],
                 headers={**TUS, **OCTETS, "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"})
    assert r.status == 204 and r.headers["upload-offset"] == "1000"
    r = tus.call("POST", "/uploads/{id}", path_id=uid, headers={**TUS, "X-HTTP-Method-Override": "HEAD"})
    assert r.status == 200 and r.headers["upload-offset"] == "1000" and r.body == b""
    r = tus.call("POST", "/uploads/{id}", path_id=uid, headers={**TUS, "X-HTTP-Method-Override": "DELETE"})
    assert r.status == 204
    assert tus.call("HEAD", "/uploads/{id}", path_id=uid, headers=TUS).status == 404
    r = tus.call("POST", "/uploads/{id}", path_id=uid, headers=TUS)
    assert r.status == 400 and r.json()["error"]["code"] == "method_override_missing"


def test_another_users_upload_is_404(tus):
    uid = upload_id(tus.create(MIB))
    assert tus.patch(uid, 0, b"MEDIA", caller=BOB).status == 404
    head = tus.call("HEAD", "/uploads/{id}", path_id=uid, caller=BOB, headers=TUS)
    assert head.status == 404 and head.body == b""  # HEAD: never a body
    assert tus.call("DELETE", "/uploads/{id}", path_id=uid, caller=BOB, headers=TUS).status == 404


def test_creation_with_upload(tus):
    data = b"MEDIA" + os.urandom(2000)
    r = tus.call("POST", "/uploads", body=data, headers={**TUS, **OCTETS, "Upload-Length": str(len(data))})
    assert r.status == 201 and r.headers["upload-offset"] == str(len(data))
    assert r.headers["vid2mp3-job"].endswith("/videos/" + upload_id(r))


def test_cors_only_for_allowed_origins(monkeypatch):
    tus = Tus(monkeypatch, CORS_ALLOWED_ORIGINS="https://app.example,http://localhost:3000")
    allowed = tus.create(MIB, Origin="https://app.example")
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "upload-offset" in allowed.headers["access-control-expose-headers"].lower()
    assert "location" in allowed.headers["access-control-expose-headers"].lower()
    assert allowed.headers["vary"] == "Origin"
    other = tus.create(MIB, Origin="https://evil.example")
    assert other.status == 201 and "access-control-allow-origin" not in other.headers


def test_a_request_over_lambdas_payload_limit_is_refused_as_aws_would(tus):
    uid = upload_id(tus.create(8 * MIB))
    event = apigw_event("PATCH", "/uploads/{id}", path_id=uid, caller=ALICE,
                        headers={**TUS, **OCTETS, "Upload-Offset": "0"})
    event["body"], event["isBase64Encoded"] = base64.b64encode(bytes(4_800_000)).decode(), True  # 6.4 MB
    r = Result(tus.app.handler(event, None))
    assert r.status == 413 and r.json()["error"]["code"] == "request_too_large"
    assert "6 MB" in r.json()["error"]["message"] and "/uploads" in r.json()["error"]["message"]

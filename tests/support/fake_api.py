"""An in-memory vid2mp3 HTTP API behind httpx.MockTransport, for the command line's unit tests.

It answers as the real API does where the client can tell (tus 1.0.0 with 4 MiB parts, Vid2mp3-Job on
the last part and on HEAD, the error shape, the gateway's 401, the MP3 inline when small and a redirect
to a storage link otherwise) and records what it was sent. Jobs move on by themselves: each GET of a
job advances it (queued -> converting 50 % -> done), or fails it when its file name says "broken".
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

API = "http://api.test/v1"
STORAGE = "http://storage.test"
PART = 4 * 1024 * 1024
INLINE_MP3 = 1000  # MP3s larger than this are redirected to storage
TUS = {"Tus-Resumable": "1.0.0"}


def _error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}})


@dataclass
class Upload:
    id: str
    owner: str
    length: int
    metadata: dict[str, str]
    data: bytearray = field(default_factory=bytearray)
    finished: bool = False


@dataclass
class FakeApi:
    users: dict[str, str] = field(default_factory=dict)  # email -> password
    tokens: dict[str, str] = field(default_factory=dict)  # token -> email
    uploads: dict[str, Upload] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    mp3_bytes: int = 500
    expires_in: int = 3600
    fail_patches: int = 0  # answer the next n PATCHes with 503
    interrupt_after_parts: int | None = None  # raise KeyboardInterrupt on the PATCH after n parts
    down: bool = False  # every request fails to connect

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def patches(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "PATCH"]

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        self.requests.append(request)
        url = str(request.url)
        if url.startswith(STORAGE):
            return self._storage(request)
        path = url.removeprefix(API).split("?")[0]
        if path == "/auth/register":
            return self._register(request)
        if path == "/auth/login":
            return self._login(request)
        user = self._user(request)
        if user is None:
            return httpx.Response(401, json={"message": "Unauthorized"})  # the gateway's body, not ours
        parts = path.strip("/").split("/")
        if parts[0] == "uploads":
            return self._tus(request, user, parts[1] if len(parts) > 1 else None)
        if parts == ["videos"]:
            return self._list(request, user)
        if parts[0] == "videos" and len(parts) >= 2:
            job = self.jobs.get(parts[1])
            if job is None or job["owner"] != user:
                return _error(404, "not_found", "No such video.")
            if len(parts) == 3 and parts[2] == "mp3":
                return self._mp3(job)
            if request.method == "DELETE":
                del self.jobs[parts[1]]
                return httpx.Response(204)
            return httpx.Response(200, json=self._advance(job))
        return httpx.Response(403, json={"message": "Missing Authentication Token"})

    # --- auth -------------------------------------------------------------------------------------

    def _register(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["email"] in self.users:
            return _error(409, "email_taken", "This email is already registered.")
        self.users[body["email"]] = body["password"]
        return httpx.Response(201, json={"id": str(uuid.uuid4()), "email": body["email"]})

    def _login(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if self.users.get(body["email"]) != body["password"]:
            return _error(401, "invalid_credentials", "Wrong email or password.")
        token = uuid.uuid4().hex
        self.tokens[token] = body["email"]
        return httpx.Response(200, json={"access_token": token, "token_type": "Bearer",
                                         "expires_in": self.expires_in})

    def _user(self, request: httpx.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        return self.tokens.get(header.removeprefix("Bearer ")) if header.startswith("Bearer ") else None

    # --- tus --------------------------------------------------------------------------------------

    def _tus(self, request: httpx.Request, user: str, upload_id: str | None) -> httpx.Response:
        assert request.headers.get("Tus-Resumable") == "1.0.0"
        if request.method == "POST" and upload_id is None:
            metadata = {}
            for pair in request.headers.get("Upload-Metadata", "").split(","):
                key, _, value = pair.strip().partition(" ")
                metadata[key] = base64.b64decode(value).decode()
            if metadata.get("bitrate") not in (None, "96k", "128k", "192k", "256k", "320k"):
                return _error(400, "invalid_bitrate", "`bitrate` must be one of 96k, 128k, 192k, 256k, 320k.")
            upload = Upload(uuid.uuid4().hex, user, int(request.headers["Upload-Length"]), metadata)
            self.uploads[upload.id] = upload
            return httpx.Response(201, headers={**TUS, "Location": f"{API}/uploads/{upload.id}"})
        upload = self.uploads.get(upload_id or "")
        if upload is None or upload.owner != user:
            return _error(404, "upload_not_found", "No such upload.")
        if request.method == "HEAD":
            return httpx.Response(200, headers={**TUS, **self._state(upload)})
        if request.method == "PATCH":
            return self._patch(request, upload)
        return _error(405, "method_not_allowed", "No.")

    def _state(self, upload: Upload) -> dict[str, str]:
        headers = {"Upload-Offset": str(len(upload.data)), "Upload-Length": str(upload.length)}
        if upload.finished:
            headers["Vid2mp3-Job"] = f"{API}/videos/{upload.id}"
        return headers

    def _patch(self, request: httpx.Request, upload: Upload) -> httpx.Response:
        if self.interrupt_after_parts is not None and len(self.patches()) > self.interrupt_after_parts:
            raise KeyboardInterrupt  # Ctrl-C while this part is on its way
        if self.fail_patches:
            self.fail_patches -= 1
            return _error(503, "unavailable", "Try again.")
        body = request.content
        assert request.headers["Content-Type"] == "application/offset+octet-stream"
        if len(body) > PART:
            return _error(413, "part_too_large", "A part may be at most 4 MiB.")
        algorithm, _, digest = request.headers.get("Upload-Checksum", "").partition(" ")
        assert algorithm == "sha1" and base64.b64decode(digest) == hashlib.sha1(body).digest()
        offset = int(request.headers["Upload-Offset"])
        if offset != len(upload.data):
            return _error(409, "offset_mismatch", f"The upload is at offset {len(upload.data)}.")
        if offset == 0 and body.startswith(b"#EXTM3U"):
            del self.uploads[upload.id]
            return _error(415, "unsupported_media", "The file is a playlist, not a video.")
        upload.data.extend(body)
        if len(upload.data) == upload.length:
            upload.finished = True
            name = upload.metadata["filename"]
            self.jobs[upload.id] = {"id": upload.id, "owner": upload.owner, "status": "queued", "filename": name,
                                    "size": upload.length, "bitrate": upload.metadata.get("bitrate", "192k"),
                                    "created_at": "2026-11-30T08:00:00+00:00",
                                    "updated_at": "2026-11-30T08:00:00+00:00"}
        return httpx.Response(204, headers={**TUS, **self._state(upload)})

    # --- jobs -------------------------------------------------------------------------------------

    def _advance(self, job: dict[str, Any]) -> dict[str, Any]:
        if job["status"] == "queued":
            job.update(status="converting", progress=50)
        elif job["status"] == "converting":
            job.pop("progress")
            if "broken" in job["filename"]:
                job.update(status="failed", error={"code": "truncated", "message": "The video is cut short."})
            else:
                job.update(status="done", mp3={"size": self.mp3_bytes, "duration_s": 3.0, "bitrate": job["bitrate"]})
        return {k: v for k, v in job.items() if k != "owner"}

    def _list(self, request: httpx.Request, user: str) -> httpx.Response:
        mine = [{k: v for k, v in j.items() if k != "owner"} for j in self.jobs.values() if j["owner"] == user]
        limit = int(request.url.params.get("limit", "20"))
        start = int(request.url.params.get("next", "0"))
        page = mine[start:start + limit]
        more = start + limit < len(mine)
        return httpx.Response(200, json={"items": page, "next": str(start + limit) if more else None})

    def mp3_of(self, job_id: str) -> bytes:
        return (hashlib.sha256(job_id.encode()).digest() * (self.mp3_bytes // 32 + 1))[: self.mp3_bytes]

    def _mp3(self, job: dict[str, Any]) -> httpx.Response:
        if job["status"] != "done":
            return _error(409, "not_ready", "The MP3 is not ready yet.")
        name = job["filename"].rsplit(".", 1)[0] + ".mp3"
        disposition = f"attachment; filename=\"x.mp3\"; filename*=UTF-8''{quote(name)}"
        if self.mp3_bytes > INLINE_MP3:
            return httpx.Response(302, headers={"Location": f"{STORAGE}/exports/{job['id']}?X-Amz-Signature=abc"})
        return httpx.Response(200, content=self.mp3_of(job["id"]),
                              headers={"Content-Type": "audio/mpeg", "Content-Disposition": disposition})

    def _storage(self, request: httpx.Request) -> httpx.Response:
        if "Authorization" in request.headers:  # as S3 refuses a presigned URL with a second credential
            return httpx.Response(400, text="<Error><Code>InvalidArgument</Code></Error>")
        job_id = request.url.path.rsplit("/", 1)[-1]
        name = self.jobs[job_id]["filename"].rsplit(".", 1)[0] + ".mp3"
        return httpx.Response(200, content=self.mp3_of(job_id),
                              headers={"Content-Type": "audio/mpeg",
                                       "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})

"""API Gateway proxy events as API Gateway (and MiniStack) build them, and what a handler answers;
multipart bodies as browsers and curl send them; a probe that stands for ffprobe in unit tests."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

from vid2mp3.auth.identity import Identity
from vid2mp3.errors import Unprocessable, UnsupportedMedia
from vid2mp3.media.probe import AudioStream, MediaInfo
from vid2mp3.media.tracks import TrackChoice

ALICE = Identity(str(uuid.uuid4()), "alice@example.com")
BOB = Identity(str(uuid.uuid4()), "bob@example.com")
BOUNDARY = "----vid2mp3test"


def multipart_body(
    file: bytes | None, *, filename: str = "clip.mp4", content_type: str = "video/mp4",
    fields: dict[str, str] | None = None, boundary: str = BOUNDARY,
) -> tuple[bytes, str]:
    """(body, Content-Type header) of a multipart/form-data request like a browser's or curl's."""
    parts: list[bytes] = []
    for name, value in (fields or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    if file is not None:
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n")
        parts.append(head.encode() + file + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def apigw_event(
    method: str, resource: str, *, path_id: str | None = None, caller: Identity | None = ALICE,
    headers: dict[str, str] | None = None, body: bytes | None = None, query: dict[str, str] | None = None,
) -> dict[str, Any]:
    path = resource.replace("{id}", path_id or "")
    binary = body is not None and (headers or {}).get("Content-Type", "").startswith("multipart/form-data")
    event: dict[str, Any] = {
        "resource": resource, "path": path, "httpMethod": method,
        "headers": headers or {},
        "multiValueHeaders": {k: [v] for k, v in (headers or {}).items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": {"id": path_id} if path_id is not None else None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource, "httpMethod": method, "path": f"/v1{path}", "stage": "v1",
            "requestId": str(uuid.uuid4()), "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": (base64.b64encode(body).decode() if binary else body.decode()) if body is not None else None,
        "isBase64Encoded": bool(binary),
    }
    if caller is not None:
        event["requestContext"]["authorizer"] = {"user_id": caller.user_id, "email": caller.email,
                                                 "principalId": caller.user_id}
    return event


class Result:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.status = raw["statusCode"]
        self.headers = {k.lower(): v for k, v in (raw.get("headers") or {}).items()}
        body = raw.get("body") or ""
        self.body: bytes = base64.b64decode(body) if raw.get("isBase64Encoded") else body.encode()

    def json(self) -> Any:
        return json.loads(self.body)


def fake_probe(path: Path, track: TrackChoice | None = None, present: Any = None) -> MediaInfo:
    """Stands for ffprobe: b"MEDIA..." is a 3 s clip with audio, b"NOAUDIO..." has none, else not media."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"MEDIA"):
        return MediaInfo("mov,mp4,m4a,3gp,3g2,mj2", 3.0, (AudioStream(1, "aac", 2, 44100, 3.0),), True)
    if head.startswith(b"NOAUDIO"):
        raise Unprocessable("The file has no audio stream to convert.", code="no_audio_stream")
    raise UnsupportedMedia("The file is not an audio or video file we can read.", code="not_media")

"""Real file sizes on the deployed template: resumable uploads with the real tus clients (tuspy, and
tus-js-client under Node), 100 MB+ videos in 4 MiB parts, a client killed halfway and resumed by a new
process; the MP3s downloaded byte-identical in Range parts and through the redirect to storage; the
refusals a tus client must be able to tell apart; an expired upload swept with every chunk; and AWS's
payload limits enforced locally.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pymongo
import pytest

from tests.e2e.conftest import Stack
from tests.support.api import TRAFFIC, Account, Api, Reply
from tests.support.apigw import multipart_body
from tests.support.media import large_video, layer_binaries

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "tests" / "support" / "tus"
MIB = 1024 * 1024
PART = 4 * MIB
AUDIO_S = 150  # at 320k, a 6 MB MP3: more than one response can carry
CONVERT_TIMEOUT_S = 240.0
TUS = {"Tus-Resumable": "1.0.0"}


class User(Account):
    finish_timeout_s = CONVERT_TIMEOUT_S

    def wait_done(self, job_url: str) -> dict[str, Any]:
        return self.wait_finished(job_url.rsplit("/", 1)[-1])


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 110 MB Matroska video with 150 s of stereo audio."""
    path = large_video(tmp_path_factory.mktemp("tus") / "holiday.mkv", seconds=AUDIO_S, megabytes=110)
    assert path.stat().st_size > 100 * 1000 * 1000
    return path


@pytest.fixture(scope="module")
def node_client() -> Path:
    """tus-js-client as npm installs it from tests/support/tus/package-lock.json (`make test` runs npm ci)."""
    script = CLIENTS / "tus-upload.mjs"
    if not (CLIENTS / "node_modules" / "tus-js-client" / "package.json").exists():
        pytest.fail("tus-js-client is not installed: run `npm ci --prefix tests/support/tus` (make test does)")
    return script


@pytest.fixture
def user(api_url: str) -> User:
    return User(Api(api_url))


def client_command(kind: str, api_url: str, token: str, path: Path, storage: Path, node_client: Path) -> list[str]:
    metadata = json.dumps({"filename": path.name, "bitrate": "320k"})
    if kind == "tuspy":
        return [sys.executable, str(CLIENTS / "tus_upload.py"), f"{api_url}/uploads", token, str(path),
                str(storage), metadata]
    return ["node", str(node_client), f"{api_url}/uploads", token, str(path), str(storage), metadata]


def run_client(command: list[str], *, kill_after: int | None = None) -> list[dict[str, Any]]:
    """Run a client, reading its JSON lines; with `kill_after`, SIGKILL it once the server took that much."""
    lines: list[dict[str, Any]] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            for raw in proc.stdout:
                line = json.loads(raw)
                lines.append(line)
                if kill_after is not None and line.get("offset", 0) >= kill_after:
                    proc.send_signal(signal.SIGKILL)
                    break
            proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
        errors = proc.stderr.read()
    if kill_after is None:
        assert proc.returncode == 0, (lines[-3:], errors[-2000:])
    return lines


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A GET that follows redirects, as curl -L and browsers do (the Authorization header is not sent on)."""
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status, dict(response.headers.items()), response.read()


def played_seconds(mp3: bytes, tmp: Path) -> float:
    _, ffprobe = layer_binaries()
    path = tmp / "out.mp3"
    path.write_bytes(mp3)
    out = subprocess.run([ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True, timeout=60)
    return float(json.loads(out.stdout)["format"]["duration"])


@pytest.mark.parametrize("kind", ["tuspy", "tus-js-client"])
def test_a_100_mb_video_killed_halfway_resumes_from_a_new_process_and_downloads_whole(
        kind, user, api_url, video, node_client, tmp_path):
    size = video.stat().st_size
    storage = tmp_path / "urls.json"
    command = client_command(kind, api_url, user.token, video, storage, node_client)
    first = run_client(command, kill_after=size // 2)
    assert first[-1]["offset"] >= size // 2
    second = run_client(command)  # the same command again, in a new process
    assert second[0].get("resumed_from", 0) >= size // 2, second[:2]  # it continued, it did not start over
    done = second[-1]
    assert done["largest_part"] == PART
    TRAFFIC.saw(done["largest_part"], 0, f"{kind} PATCH")
    job = user.wait_done(done["job"])
    assert job["status"] == "done", job
    assert job["size"] == size and job["filename"] == video.name and job["bitrate"] == "320k"
    mp3_size = job["mp3"]["size"]
    assert mp3_size > PART  # too large for one response

    mp3_path = f"/videos/{job['id']}/mp3"
    parts = []
    for first_byte in range(0, mp3_size, PART):
        r = user.call("GET", mp3_path, headers={"Accept": "audio/mpeg", "Range": f"bytes={first_byte}-"})
        assert r.status == 206 and len(r.raw) <= PART
        assert r.headers["Content-Range"] == f"bytes {first_byte}-{first_byte + len(r.raw) - 1}/{mp3_size}"
        parts.append(r.raw)
    by_ranges = b"".join(parts)
    status, headers, by_redirect = fetch(api_url + mp3_path,
                                         {"Authorization": f"Bearer {user.token}", "Accept": "*/*"})
    assert status == 200 and headers["Content-Type"] == "audio/mpeg"
    assert f'filename="{video.stem}.mp3"' in headers["Content-Disposition"]
    assert by_ranges == by_redirect and len(by_ranges) == mp3_size
    assert abs(played_seconds(by_redirect, tmp_path) - AUDIO_S) < 0.5
    # Or as a link, for a page's download button or <audio src>.
    link = user.call("GET", mp3_path, headers={"Accept": "application/json"})
    assert link.status == 200 and link.body["size"] == mp3_size and link.body["filename"] == f"{video.stem}.mp3"
    assert fetch(link.body["url"])[2] == by_redirect
    # The redirect itself: a short-lived link, never cached; deleting the video removes the copy it names.
    r = user.call("GET", mp3_path, headers={"Accept": "*/*"})
    assert r.status == 302 and r.raw == b"" and r.headers["Cache-Control"] == "no-store"
    assert "X-Amz-Expires=300" in r.headers["Location"]
    assert user.call("DELETE", f"/videos/{job['id']}").status == 204
    with pytest.raises(urllib.error.HTTPError) as gone:
        fetch(r.headers["Location"])
    gone.value.close()
    assert gone.value.code == 404


# --- what a client must be able to tell apart ------------------------------------------------------


def create(user: User, length: int) -> str:
    r = user.call("POST", "/uploads", headers={**TUS, "Upload-Length": str(length),
                                               "Upload-Metadata": "filename " + base64.b64encode(b"a.mkv").decode()})
    assert r.status == 201, r.raw
    assert r.headers["Location"].startswith(user.api.base_url + "/uploads/")  # keeps the stage path
    return r.headers["Location"].removeprefix(user.api.base_url)


def patch(user: User, path: str, offset: int, data: bytes, **headers: str) -> Reply:
    return user.call("PATCH", path, raw=data, headers={**TUS, "Content-Type": "application/offset+octet-stream",
                                                       "Upload-Offset": str(offset), **headers})


def test_checksum_mismatch_wrong_offset_and_an_over_size_part(user, video):
    data = video.read_bytes()[:12 * MIB]
    path = create(user, len(data))
    sha1 = base64.b64encode(hashlib.sha1(b"not these bytes").digest()).decode()
    r = patch(user, path, 0, data[:PART], **{"Upload-Checksum": f"sha1 {sha1}"})
    assert r.status == 460 and r.error_code() == "checksum_mismatch"
    good = base64.b64encode(hashlib.sha1(data[:PART]).digest()).decode()
    r = patch(user, path, 0, data[:PART], **{"Upload-Checksum": f"sha1 {good}"})
    assert r.status == 204 and r.headers["Upload-Offset"] == str(PART)
    r = patch(user, path, 0, data[:PART])
    assert r.status == 409 and r.error_code() == "offset_mismatch"
    over = api_call_unrecorded(user, "PATCH", path, data[PART:2 * PART + 1],
                               {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(PART)})
    assert over.status == 413 and "4 MiB" in over.body["error"]["message"]
    head = user.call("HEAD", path, headers=TUS)
    assert head.status == 200 and head.headers["Upload-Offset"] == str(PART) and head.raw == b""
    assert head.headers["Cache-Control"] == "no-store" and "Upload-Expires" in head.headers
    assert user.call("DELETE", path, headers=TUS).status == 204
    assert user.call("HEAD", path, headers=TUS).status == 404


def test_another_users_upload_is_404(user, api_url):
    path = create(user, MIB)
    other = User(Api(api_url))
    assert other.call("HEAD", path, headers=TUS).status == 404
    assert patch(other, path, 0, b"x" * 1000).status == 404


def test_the_cors_preflight_needs_no_token(api_url):
    request = urllib.request.Request(api_url + "/uploads", method="OPTIONS", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,tus-resumable,upload-length"})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 204
        assert response.headers["Tus-Version"] == "1.0.0" and response.headers["Access-Control-Allow-Origin"]
        assert "creation" in response.headers["Tus-Extension"]


def test_an_expired_upload_leaves_no_chunk_behind(user, stack: Stack, video):
    data = video.read_bytes()[:10 * MIB]
    path = create(user, len(data) + MIB)
    for offset in range(0, len(data), PART):
        assert patch(user, path, offset, data[offset:offset + PART]).status == 204
    upload_id = path.rsplit("/", 1)[1]
    with pymongo.MongoClient(stack.parameters["MongodbUri"]) as client:
        chunks = client["vid2mp3"]["videos.chunks"]
        assert chunks.count_documents({"files_id": upload_id}) == len(data) // (255 * 1024)
        with psycopg.connect(stack.parameters["DatabaseUrl"], autocommit=True) as db:
            db.execute("UPDATE uploads SET expires_at = now() - interval '1 second' WHERE id = %s", (upload_id,))
        assert user.call("HEAD", path, headers=TUS).status == 410  # expired, not yet swept
        result = stack.invoke("RedriveFunction", {"id": "e2e-sweep", "source": "aws.events",
                                                  "detail-type": "Scheduled Event"})
        assert result["uploads_removed"] >= 1
        assert chunks.count_documents({"files_id": upload_id}) == 0
    assert user.call("HEAD", path, headers=TUS).status == 404


# --- AWS's limits, enforced locally ---------------------------------------------------------------


def api_call_unrecorded(user: User, method: str, path: str, data: bytes, headers: dict[str, str]) -> Reply:
    """A request this tier sends on purpose over a limit (not counted as traffic that must fit)."""
    request = urllib.request.Request(user.api.base_url + path, data=data, method=method,
                                     headers={**headers, "Authorization": f"Bearer {user.token}"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return Reply(response.status, dict(response.headers.items()), response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Reply(exc.code, dict(exc.headers.items()), exc.read())


def test_a_multipart_upload_over_what_lambda_takes_is_refused_as_on_aws(user, video):
    body, ctype = multipart_body(video.read_bytes()[:int(4.6 * MIB)], filename="big.mkv")
    r = api_call_unrecorded(user, "POST", "/videos", body, {"Content-Type": ctype, "Accept": "application/json"})
    assert r.status == 413 and r.body["error"]["code"] == "request_too_large"
    assert "/uploads" in r.body["error"]["message"]  # says what to do instead


def test_a_request_over_api_gateways_10_mib_is_refused(user):
    r = api_call_unrecorded(user, "POST", "/videos", os.urandom(11 * MIB),
                            {"Content-Type": "multipart/form-data; boundary=x", "Accept": "application/json"})
    assert r.status == 413

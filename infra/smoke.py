"""One conversion through a deployed vid2mp3, as a user drives it: register, log in, upload, wait, download.

    python -m infra.smoke --api http://localhost:8080 --video clip.mp4 [--timeout 300]

Used by the Kubernetes job of the CI workflow (the dev overlay in kind) and runnable against any stack
(`make run`'s API URL, a cluster's front, AWS's stage URL). Standard library only. Prints one line per
step; exits 1 with the step that failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any


class SmokeFailed(Exception):
    pass


def _call(method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
          timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - the API the user names
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers.items()), exc.read()


def _json(method: str, url: str, payload: Any = None, token: str | None = None, expect: int = 200) -> Any:
    headers = {"Content-Type": "application/json"} if payload is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    status, _, body = _call(method, url, body=json.dumps(payload).encode() if payload is not None else None,
                            headers=headers)
    if status != expect:
        raise SmokeFailed(f"{method} {url}: HTTP {status} {body[:300]!r} (expected {expect})")
    return json.loads(body) if body else None


def run(api: str, video: Path, timeout_s: float, say: Any = print) -> bytes:
    api = api.rstrip("/")
    email, password = f"smoke-{uuid.uuid4().hex[:12]}@example.com", "smoke test password 42"
    _json("POST", f"{api}/auth/register", {"email": email, "password": password}, expect=201)
    token = _json("POST", f"{api}/auth/login", {"email": email, "password": password})["access_token"]
    say(f"registered and logged in as {email}")
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{video.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode() + video.read_bytes()
    body += f"\r\n--{boundary}--\r\n".encode()
    status, _, answer = _call("POST", f"{api}/videos", body=body, headers={
        "Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"})
    if status != 202:
        raise SmokeFailed(f"upload: HTTP {status} {answer[:300]!r}")
    job_id = json.loads(answer)["id"]
    say(f"uploaded {video.name}: job {job_id}")
    deadline = time.monotonic() + timeout_s
    while True:
        job = _json("GET", f"{api}/videos/{job_id}", token=token)
        if job["status"] == "done":
            break
        if job["status"] == "failed" or time.monotonic() > deadline:
            raise SmokeFailed(f"job {job_id} is {job['status']}: {job.get('error')}")
        time.sleep(2)
    say(f"converted: {job['mp3']}")
    status, _, mp3 = _call("GET", f"{api}/videos/{job_id}/mp3",
                                 headers={"Authorization": f"Bearer {token}", "Accept": "audio/mpeg"})
    if status != 200 or not (mp3.startswith(b"ID3") or mp3[:1] == b"\xff") or len(mp3) != job["mp3"]["size"]:
        raise SmokeFailed(f"download: HTTP {status}, {len(mp3)} bytes starting {mp3[:4]!r}")
    say(f"downloaded {len(mp3)} bytes of MP3")
    return mp3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.smoke", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--api", required=True, help="the API's base URL")
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the conversion")
    args = parser.parse_args(argv)
    try:
        run(args.api, args.video, args.timeout)
    except (SmokeFailed, OSError) as exc:
        print(f"smoke test failed: {exc}", file=sys.stderr)
        return 1
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

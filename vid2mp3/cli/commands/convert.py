"""convert FILE...: upload each file (resumably), wait for its conversion, download its MP3.

Each file goes its own way: one that is refused or whose conversion fails is reported in one line and the
others carry on; the command ends with 1 when any failed. Ctrl-C stops it; the same command again
continues each upload where it stopped, or picks up the job an earlier run already made.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vid2mp3.cli import output
from vid2mp3.cli.api import Api
from vid2mp3.cli.context import Context
from vid2mp3.cli.download import download_mp3, free_path
from vid2mp3.cli.errors import FAILED, INTERRUPTED, OK, ApiError, CliError, UsageError
from vid2mp3.cli.progress import FileProgress, reporter
from vid2mp3.cli.tus import UploadStore, upload

POLL_S = 1.0
# Refusals that are about the command line, not one file: stop at once.
USAGE_CODES = ("invalid_bitrate",)


@dataclass
class Outcome:
    path: Path
    progress: FileProgress = field(repr=False)
    key: str = ""
    job_id: str | None = None
    status: str = "uploading"
    resumed_from: int | None = None
    mp3: Path | None = None
    mp3_size: int | None = None
    error: dict[str, str] | None = None

    def fail(self, code: str, message: str) -> None:
        self.status, self.error = "failed", {"code": code, "message": message}
        self.progress.finished(False)

    def to_json(self) -> dict[str, Any]:
        return {"file": str(self.path), "job_id": self.job_id, "status": self.status,
                "resumed_from": self.resumed_from, "mp3": str(self.mp3) if self.mp3 else None,
                "mp3_size": self.mp3_size, "error": self.error}


def convert(ctx: Context, args: argparse.Namespace) -> int:
    files: list[Path] = args.files
    for path in files:
        if not path.is_file():
            raise UsageError(f"{path}: no such file.", code="no_such_file")
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    store = UploadStore(ctx.config / "uploads")
    store.prune()
    outcomes: list[Outcome] = []
    try:
        with ctx.authed_api() as api, reporter(ctx.err) as shown:
            for path in files:
                outcome = Outcome(path, shown.file(path.name))
                outcomes.append(outcome)
                _upload(api, store, outcome, args.bitrate)
            if not args.no_wait:
                _wait_and_download(api, store, [o for o in outcomes if o.status == "queued"], out_dir)
    except KeyboardInterrupt:
        ctx.err.print("vid2mp3: interrupted; run the same command again to continue where it stopped.",
                      markup=False, highlight=False)
        return INTERRUPTED
    _report(ctx, outcomes)
    return FAILED if any(o.error for o in outcomes) else OK


def _upload(api: Api, store: UploadStore, outcome: Outcome, bitrate: str | None) -> None:
    if outcome.path.stat().st_size == 0:
        outcome.fail("empty_file", "The file is empty.")
        return
    try:
        uploaded = upload(api, store, outcome.path, bitrate=bitrate, progress=outcome.progress)
    except ApiError as exc:
        if exc.code in USAGE_CODES:
            raise UsageError(exc.message, code=exc.code) from None
        outcome.fail(exc.code, exc.message)  # refused: the server keeps nothing of it
        return
    outcome.key, outcome.job_id, outcome.resumed_from = uploaded.key, uploaded.job_id, uploaded.resumed_from
    outcome.status = "queued"


def _wait_and_download(api: Api, store: UploadStore, pending: list[Outcome], out_dir: Path) -> None:
    while pending:
        for outcome in list(pending):
            assert outcome.job_id is not None
            try:
                job = api.get_json(f"/videos/{outcome.job_id}")
            except ApiError as exc:
                if exc.status != 404:
                    raise
                job = {"status": "failed", "error": {"code": "job_gone", "message": "The job was deleted."}}
            outcome.status = str(job["status"])
            outcome.progress.job(job)
            if outcome.status == "failed":
                outcome.fail(str(job["error"]["code"]), output.reason(job))
            elif outcome.status == "done":
                saved = download_mp3(api, outcome.job_id, lambda name: free_path(out_dir, name), outcome.progress)
                outcome.mp3, outcome.mp3_size = saved.path, saved.size
                outcome.progress.finished(True)
            else:
                continue
            store.drop(outcome.key)  # finished with: the same command again converts the file anew
            pending.remove(outcome)
        if pending:
            time.sleep(POLL_S)


def _report(ctx: Context, outcomes: list[Outcome]) -> None:
    if ctx.json:
        ctx.emit({"results": [o.to_json() for o in outcomes]}, None)
        return
    for o in outcomes:
        if o.error is not None:
            ctx.failure(CliError(o.error["message"], code=o.error["code"]), about=f"{o.path.name}: not converted: ")
        elif o.mp3 is not None:
            ctx.emit(None, f"{o.path.name} -> {o.mp3} ({output.size(o.mp3_size)})")
        else:
            ctx.emit(None, f"{o.path.name}: uploaded; converting as job {o.job_id} "
                           f"(vid2mp3 status {o.job_id}, then vid2mp3 download {o.job_id})")

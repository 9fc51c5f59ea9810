"""list, status, download, rm: the user's jobs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vid2mp3.cli import output
from vid2mp3.cli.context import Context
from vid2mp3.cli.download import Progress, download_mp3, free_path
from vid2mp3.cli.errors import FAILED, OK

PAGE = "100"


def list_jobs(ctx: Context, args: argparse.Namespace) -> int:
    items: list[dict[str, Any]] = []
    with ctx.authed_api() as api:
        params = {"limit": PAGE}
        while True:
            page = api.get_json("/videos", params=params)
            items.extend(page["items"])
            if not page.get("next"):
                break
            params = {"limit": PAGE, "next": str(page["next"])}
    ctx.emit({"items": items}, output.jobs_table(items) if items else "No conversions yet.")
    return OK


def status(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.authed_api() as api:
        job = api.get_json(f"/videos/{args.id}")
    ctx.emit(job, output.job_detail(job))
    return FAILED if job.get("status") == "failed" else OK


def download(ctx: Context, args: argparse.Namespace) -> int:
    wanted: Path | None = args.output

    def destination(filename: str) -> Path:
        if wanted is None:
            return free_path(Path.cwd(), filename)
        if wanted.is_dir():
            return free_path(wanted, filename)
        return wanted  # a path the user named: theirs to overwrite

    with ctx.authed_api() as api:
        saved = download_mp3(api, args.id, destination, Progress())
    ctx.emit({"id": args.id, "path": str(saved.path), "size": saved.size},
             f"{saved.path} ({output.size(saved.size)})")
    return OK


def remove(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.authed_api() as api:
        for job_id in args.ids:
            api.send("DELETE", f"/videos/{job_id}")
            if not ctx.json:
                ctx.emit(None, f"removed {job_id}")
    ctx.emit({"removed": args.ids}, None)
    return OK

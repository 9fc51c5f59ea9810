"""Jobs and files as a person reads them (sizes, lengths, the failure's reason in words)."""

from __future__ import annotations

from typing import Any

from rich.filesize import decimal
from rich.table import Table


def size(n: Any) -> str:
    return decimal(int(n)) if isinstance(n, int | float) else "-"


def length(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def outcome(job: dict[str, Any]) -> str:
    """What became of a job, in words: its MP3, its progress, or why it failed."""
    status = job.get("status")
    if status == "done" and isinstance(job.get("mp3"), dict):
        mp3 = job["mp3"]
        return f"MP3 {size(mp3.get('size'))}, {length(mp3.get('duration_s'))}, {mp3.get('bitrate')}"
    if status == "failed":
        return reason(job)
    if status == "converting":
        return f"{job.get('progress') or 0} %"
    return ""


def reason(job: dict[str, Any]) -> str:
    error = job["error"] if isinstance(job.get("error"), dict) else {}
    return str(error.get("message") or error.get("code") or "the conversion failed")


def jobs_table(jobs: list[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    # Ids and facts are never cut; a narrow terminal folds the file name and the result instead.
    table.add_column("ID", no_wrap=True, min_width=36)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("FILE", overflow="fold", ratio=1)
    for column in ("SIZE", "LENGTH", "CREATED"):
        table.add_column(column, no_wrap=True)
    table.add_column("RESULT", overflow="fold", ratio=1)
    for job in jobs:
        created = str(job.get("created_at", ""))[:19].replace("T", " ")
        table.add_row(str(job.get("id")), str(job.get("status")), str(job.get("filename")), size(job.get("size")),
                      length(job.get("duration_s")), created, outcome(job))
    return table


def job_detail(job: dict[str, Any]) -> str:
    lines = [
        f"id:       {job.get('id')}",
        f"file:     {job.get('filename')} ({size(job.get('size'))}, {length(job.get('duration_s'))})",
        f"status:   {job.get('status')}",
        f"bitrate:  {job.get('bitrate')}",
        f"created:  {job.get('created_at')}",
        f"updated:  {job.get('updated_at')}",
    ]
    if job.get("status") == "converting":
        lines.append(f"progress: {job.get('progress') or 0} %")
    if job.get("status") == "done":
        lines.append(f"mp3:      {outcome(job).removeprefix('MP3 ')} (vid2mp3 download {job.get('id')})")
    if job.get("status") == "failed":
        lines.append(f"failed:   {reason(job)}")
    return "\n".join(lines)

"""How a conversion shows its progress: on a terminal, a rich progress bar per file (the upload with size,
rate and ETA, then the conversion's progress from the job, then the download); elsewhere (a log, a
pipe) a line at each step and every 10 % of a transfer. Both on standard error: standard output is
for the results."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from vid2mp3.cli import download, tus

STEP = 10  # per cent, between two lines of a transfer's progress when not on a terminal


class FileProgress(tus.Progress, download.Progress):
    """The progress of one file: its upload, its job, its download."""

    def job(self, job: dict[str, Any]) -> None: ...

    def finished(self, ok: bool) -> None: ...


class Reporter:
    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        return None

    def file(self, name: str) -> FileProgress:
        raise NotImplementedError


def reporter(err: Console) -> Reporter:
    return Bars(err) if err.is_terminal else Lines(err)


# --- a terminal: bars ----------------------------------------------------------------------------


class _ForBytes(ProgressColumn):
    """A column shown only while the task counts bytes (a transfer), blank for the conversion."""

    def __init__(self, inner: ProgressColumn) -> None:
        super().__init__()
        self.inner = inner

    def render(self, task: Task) -> Text:
        rendered = self.inner.render(task) if task.fields.get("bytes") else Text("")
        return rendered if isinstance(rendered, Text) else Text(str(rendered))


class Bars(Reporter):
    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}", style="bold"),
            TextColumn("{task.fields[stage]:<10}"),
            BarColumn(),
            TaskProgressColumn(),
            _ForBytes(DownloadColumn()),
            _ForBytes(TransferSpeedColumn()),
            TimeRemainingColumn(),
            console=console,
        )

    def __enter__(self) -> Reporter:
        self.progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.progress.stop()

    def file(self, name: str) -> FileProgress:
        return _Bar(self.progress, self.progress.add_task(name, total=None, stage="waiting", bytes=False))


class _Bar(FileProgress):
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.progress, self.task = progress, task
        self.stage = ""
        self.total: float | None = None

    def _stage(self, stage: str, total: float | None, completed: int, *, counts_bytes: bool) -> None:
        if stage != self.stage:
            self.stage, self.total = stage, total
            self.progress.reset(self.task, total=total, completed=completed, stage=stage, bytes=counts_bytes)

    def started(self, size: int, offset: int, *, resumed: bool) -> None:
        self._stage("resuming" if resumed and offset else "uploading", size, offset, counts_bytes=True)

    def advanced(self, offset: int) -> None:
        self.progress.update(self.task, completed=offset)

    def job(self, job: dict[str, Any]) -> None:
        status = str(job.get("status"))
        if status in ("queued", "converting"):
            self._stage(status, 100, 0, counts_bytes=False)
            self.progress.update(self.task, completed=int(job.get("progress") or 0))

    def download_started(self, filename: str, total: int | None) -> None:
        self._stage("download", total, 0, counts_bytes=True)

    def downloaded(self, received: int) -> None:
        self.progress.update(self.task, completed=received)

    def finished(self, ok: bool) -> None:
        if ok and self.total:
            self.progress.update(self.task, completed=self.total)
        self.progress.update(self.task, stage="done" if ok else "failed")
        self.progress.stop_task(self.task)


# --- elsewhere: lines ----------------------------------------------------------------------------


class Lines(Reporter):
    def __init__(self, console: Console) -> None:
        self.console = console

    def file(self, name: str) -> FileProgress:
        return _Lines(self.console, name)


class _Lines(FileProgress):
    def __init__(self, console: Console, name: str) -> None:
        self.console, self.name = console, name
        self.total: int | None = None
        self.next_step = STEP
        self.status = ""

    def say(self, text: str) -> None:
        self.console.print(f"{self.name}: {text}", markup=False, highlight=False, soft_wrap=True)

    def _transfer(self, total: int | None, done: int) -> None:
        self.total = total
        self.next_step = (done * 100 // total // STEP + 1) * STEP if total else STEP

    def _step(self, done: int, verb: str) -> None:
        if not self.total:
            return
        percent = done * 100 // self.total
        if percent >= self.next_step and done < self.total:
            self.say(f"{verb} {percent} % ({decimal(done)} of {decimal(self.total)})")
            self.next_step = (percent // STEP + 1) * STEP

    def started(self, size: int, offset: int, *, resumed: bool) -> None:
        if resumed and offset >= size:
            self.say("uploaded by an earlier run")
        elif resumed:
            self.say(f"resuming the upload at {decimal(offset)} of {decimal(size)} (byte {offset})")
        else:
            self.say(f"uploading {decimal(size)}")
        self._transfer(size, offset)

    def advanced(self, offset: int) -> None:
        self._step(offset, "uploaded")

    def job(self, job: dict[str, Any]) -> None:
        status = str(job.get("status"))
        if status != self.status and status in ("queued", "converting"):
            self.say(f"{status} (job {job.get('id')})")
        self.status = status

    def download_started(self, filename: str, total: int | None) -> None:
        self.say(f"downloading {filename}" + (f" ({decimal(total)})" if total else ""))
        self._transfer(total, 0)

    def downloaded(self, received: int) -> None:
        self._step(received, "downloaded")

"""The convert function's dependencies, built once per cold start; each can be handed in (tests)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from vid2mp3.bootstrap import Deps, bootstrap
from vid2mp3.convert.lock import JobLock, PostgresJobLock
from vid2mp3.convert.service import Converter
from vid2mp3.jobs import JobRepository
from vid2mp3.media.binaries import find_ffmpeg, find_ffprobe
from vid2mp3.queue.topology import DEFAULT_DELIVERY_LIMIT
from vid2mp3.settings import Settings


def bootstrap_convert(
    settings: Settings | None = None,
    *,
    deps: Deps | None = None,
    jobs: JobRepository | None = None,
    lock: JobLock | None = None,
    work_root: Path | None = None,
    logger: Any = None,
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
) -> Converter:
    """Production defaults (PostgreSQL, GridFS, RabbitMQ, the layer's ffmpeg) for what is not given.

    A missing ffmpeg/ffprobe raises FileNotFoundError naming where it looked: a deployment fault.
    """
    deps = deps or bootstrap(settings)
    settings = deps.settings
    if jobs is None:
        from vid2mp3.jobs.postgres import PostgresJobRepository

        jobs = PostgresJobRepository(deps.db)
    converter = Converter(
        jobs=jobs,
        store=deps.store,
        publisher=deps.publisher,
        lock=lock or PostgresJobLock(settings.database_url),
        ffmpeg=find_ffmpeg(settings.ffmpeg_path, os.environ),
        ffprobe=find_ffprobe(settings.ffprobe_path, os.environ),
        work_root=work_root or Path(tempfile.gettempdir()),
        max_duration_s=float(settings.max_duration_seconds),
        delivery_limit=delivery_limit,
    )
    if logger is not None:
        converter.logger = logger
    return converter

"""Re-drive (every minute, EventBridge schedule): publish again what the broker never confirmed.

Jobs left `queued` with no confirmed conversion message for more than a few minutes are claimed and
published once more (vid2mp3.jobs.service.redrive); tombstones of deleted jobs are purged.
"""

from __future__ import annotations

from typing import Any

from vid2mp3.bootstrap import bootstrap_upload
from vid2mp3.jobs import service
from vid2mp3.log import get_logger

logger = get_logger("upload-redrive")
_jobs: service.JobsDeps | None = None


def jobs() -> service.JobsDeps:
    """Bootstrapped on the first event of a cold start, then reused."""
    global _jobs
    if _jobs is None:
        _jobs = bootstrap_upload(logger=logger)
    return _jobs


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.set_correlation_id(str((event or {}).get("id") or getattr(context, "aws_request_id", "") or "") or None)
    result = service.redrive(jobs())
    summary = dict(result.to_log())
    if any(summary.values()):
        logger.info("re-drive done", extra=summary)
    return summary

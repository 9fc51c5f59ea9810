"""Housekeeping (every minute, EventBridge schedule): publish again what the broker never confirmed,
and remove resumable uploads that expired.

Jobs left `queued` with no confirmed conversion message for more than a few minutes are claimed and
published once more (vid2mp3.jobs.service.redrive); tombstones of deleted jobs are purged; uploads
past their Upload-Expires go with every chunk they stored (vid2mp3.uploads.service.sweep).
"""

from __future__ import annotations

from typing import Any

from vid2mp3.bootstrap import bootstrap, bootstrap_upload, bootstrap_uploads
from vid2mp3.jobs import service
from vid2mp3.log import get_logger
from vid2mp3.uploads import service as uploads

logger = get_logger("upload-redrive")
_uploads: uploads.UploadsDeps | None = None


def deps() -> uploads.UploadsDeps:
    """Bootstrapped on the first event of a cold start, then reused."""
    global _uploads
    if _uploads is None:
        shared = bootstrap()
        _uploads = bootstrap_uploads(bootstrap_upload(shared, logger=logger), db=shared.db)
    return _uploads


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.set_correlation_id(str((event or {}).get("id") or getattr(context, "aws_request_id", "") or "") or None)
    d = deps()
    summary = dict(service.redrive(d.jobs).to_log())
    swept = uploads.sweep(d)
    summary.update({"uploads_removed": len(swept.removed), "uploads_forgotten": len(swept.forgotten)})
    if any(summary.values()):
        logger.info("housekeeping done", extra=summary)
    return summary

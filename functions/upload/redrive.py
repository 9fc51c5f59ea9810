"""Housekeeping (every minute, EventBridge schedule): publish again what the broker never confirmed,
retry due webhooks, and remove what expired.

Jobs left `queued` with no confirmed conversion message for more than a few minutes are claimed and
published once more (vid2mp3.jobs.service.redrive); tombstones of deleted jobs are purged; finished jobs
past their `expires_at` go with their files (vid2mp3.jobs.service.expire_jobs, in bounded batches);
webhook deliveries whose next try is due are published again (vid2mp3.webhooks.service.redrive); uploads
past their Upload-Expires go with every chunk they stored (vid2mp3.uploads.service.sweep); rate-limit
records older than their window are forgotten.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from vid2mp3.bootstrap import bootstrap, bootstrap_upload, bootstrap_uploads
from vid2mp3.jobs import service
from vid2mp3.log import get_logger
from vid2mp3.uploads import service as uploads
from vid2mp3.webhooks import service as webhooks

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
    summary["jobs_expired"] = len(service.expire_jobs(d.jobs))
    if d.jobs.webhooks is not None:
        summary["webhooks_due"] = len(webhooks.redrive(d.jobs.webhooks, d.jobs.publisher, queue=d.jobs.webhook_queue))
    swept = uploads.sweep(d)
    summary.update({"uploads_removed": len(swept.removed), "uploads_forgotten": len(swept.forgotten)})
    if d.jobs.quotas is not None:
        summary["rate_records_forgotten"] = d.jobs.quotas.rates.purge(d.jobs.clock() - timedelta(hours=1))
    if any(summary.values()):
        logger.info("housekeeping done", extra=summary)
    return summary

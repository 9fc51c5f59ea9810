"""Signed webhooks: a POST to the job's `callback_url` when it finished, exactly once per job and outcome.

    targets.py    where a webhook may go (SSRF rules, after DNS resolution)
    signing.py    the Vid2mp3-Signature header (HMAC-SHA256 over "<t>.<body>", as Stripe)
    transport.py  one POST to a checked address, no redirects, short timeouts
    records.py    the delivery record in PostgreSQL (the port and its adapter); memory.py is its fake
    service.py    claim, sign, POST, record; the scheduled re-drive of due retries

Convert (and the upload, for a file refused once stored) publish a message on `webhook_queue` when a job
with a callback URL finished; the webhook function delivers it. A failed try (5xx, 429, a timeout, a
connection error) is retried after RETRY_DELAYS_S: the scheduled function publishes a due delivery again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Kind = Literal["completed", "failed"]
Status = Literal["pending", "delivered", "failed"]

MAX_ATTEMPTS = 3
# The wait after the 1st and the 2nd failed try: three tries over about ten minutes.
RETRY_DELAYS_S = (120.0, 480.0)
EVENT_TYPES: dict[str, str] = {"completed": "job.done", "failed": "job.failed"}


@dataclass(frozen=True)
class Attempt:
    at: datetime
    status: int | None  # the receiver's HTTP status; None when there was no answer
    error: str | None
    ms: int

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "status": self.status, "error": self.error, "ms": self.ms}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attempt:
        return cls(datetime.fromisoformat(str(data["at"])), data.get("status"), data.get("error"),
                   int(data.get("ms", 0)))


@dataclass(frozen=True)
class DeliveryRecord:
    job_id: str
    kind: Kind
    owner_id: str
    url: str
    event_id: str
    status: Status
    attempts: tuple[Attempt, ...]
    next_attempt_at: datetime
    delivered_at: datetime | None = None

    def to_api(self) -> dict[str, Any]:
        """As the job shows it (GET /videos/{id}, `webhook.deliveries`)."""
        body: dict[str, Any] = {"event": EVENT_TYPES[self.kind], "event_id": self.event_id, "status": self.status,
                                "attempts": [a.to_json() for a in self.attempts]}
        if self.status == "pending" and self.attempts:
            body["next_attempt_at"] = self.next_attempt_at.isoformat()
        return body


def event_id(job_id: str, kind: Kind) -> str:
    """The same for every try of one job's outcome: receivers deduplicate on it."""
    return f"evt_{job_id.replace('-', '')}_{kind}"

"""Send the notification of one finished job, exactly once per job and outcome.

Claim, then send, then record - all while holding the job's record:

1. claim: create the (job, outcome) record as 'pending' unless it exists, and lock it. A second delivery
   of the same message (a redelivery, or a concurrent one) waits for this one to end.
2. already 'sent' or 'undeliverable': nothing to do; the message is acknowledged.
3. send over SMTP. Accepted: mark 'sent'. Refused for good (5xx for the recipient, or an address no server
   could take): mark 'undeliverable' - done, acknowledged. Anything else (4xx, connection trouble,
   misconfiguration): count the attempt, keep 'pending', commit, then raise, so the broker redelivers.

The one duplicate left is the one SMTP itself cannot rule out: the server accepted the message but the
reply, or the commit of 'sent' after it, was lost. The retry then sends it again, with the same
Message-ID, which lets mail clients fold the two into one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import make_msgid
from enum import StrEnum

from vid2mp3.mail import Mailer, MailError, UndeliverableRecipient, sender_domain
from vid2mp3.notify import Notification
from vid2mp3.notify.compose import InvalidRecipient, compose
from vid2mp3.notify.records import NotificationLog
from vid2mp3.settings import Settings

DEFAULT_MESSAGE_ID_DOMAIN = "vid2mp3.local"


class Outcome(StrEnum):
    SENT = "sent"
    UNDELIVERABLE = "undeliverable"
    ALREADY_DONE = "already_done"  # sent or found undeliverable by an earlier delivery: nothing sent


@dataclass(frozen=True)
class NotifyDeps:
    settings: Settings
    records: NotificationLog
    mailer: Mailer
    clock: Callable[[], datetime]


def notify(notification: Notification, deps: NotifyDeps) -> Outcome:
    """Send `notification` unless it was already sent (or found undeliverable).

    Raises DependencyUnavailable (the database, or TransientMailError) and MailerMisconfigured: in both
    cases nothing was sent, the record says why, and a redelivery tries again.
    """
    settings = deps.settings
    # Used only if this call creates the record; every later attempt reuses the stored one.
    candidate_id = make_msgid(domain=sender_domain(settings.mail_from) or DEFAULT_MESSAGE_ID_DOMAIN)
    failure: MailError | None = None
    with deps.records.claim(
        notification.job_id, notification.kind, recipient=notification.email, message_id=candidate_id,
        correlation_id=notification.correlation_id,
    ) as claim:
        if claim.record.status != "pending":
            return Outcome.ALREADY_DONE
        try:
            message = compose(notification, mail_from=settings.mail_from,
                              public_base_url=settings.public_base_url, message_id=claim.record.message_id,
                              date=deps.clock())
            deps.mailer.send(message)
        except (InvalidRecipient, UndeliverableRecipient) as exc:
            claim.mark_undeliverable(str(exc), getattr(exc, "smtp_code", None))
            return Outcome.UNDELIVERABLE
        except MailError as exc:
            claim.record_failure(str(exc), exc.smtp_code)
            failure = exc  # raised once the attempt is committed
        else:
            claim.mark_sent()
            return Outcome.SENT
    assert failure is not None
    raise failure

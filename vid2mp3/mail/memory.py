"""An in-memory mailer for tests: keeps what it was given, and fails on request."""

from __future__ import annotations

import copy
import threading
from collections import deque
from email import policy
from email.message import EmailMessage

from vid2mp3.mail import MailError


class MemoryMailer:
    """`outbox` holds every accepted message (a copy), oldest first.

    `fail_next(error, times)` makes the next `times` sends raise `error` instead, as a server that answers
    451 or 550 would. Each message is serialised exactly as the SMTP adapter would send it, so a
    message the real adapter could not send (a header with a line break in it) fails here too.
    """

    def __init__(self) -> None:
        self.outbox: list[EmailMessage] = []
        self.attempts = 0
        self._failures: deque[MailError] = deque()
        self._lock = threading.Lock()

    def fail_next(self, error: MailError, times: int = 1) -> None:
        with self._lock:
            self._failures.extend([error] * times)

    def send(self, message: EmailMessage) -> None:
        message.as_bytes(policy=policy.SMTP)
        with self._lock:
            self.attempts += 1
            if self._failures:
                raise self._failures.popleft()
            self.outbox.append(copy.deepcopy(message))

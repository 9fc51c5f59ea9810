"""The mailer port: hand one composed message to a mail server, and say clearly what went wrong.

Every failure is one of three kinds, because the caller must react differently to each:

- `TransientMailError`: try again later - the server answered 4xx (greylisting, mailbox busy, rate
  limit, "try again"), or could not be reached, timed out or dropped the connection. It is a
  `DependencyUnavailable`, so a queue-triggered function lets it propagate and the message is
  redelivered.
- `UndeliverableRecipient`: the server refused this message for this recipient for good (5xx to RCPT
  TO, or 5xx to the message itself). Retrying the same message can only get the same answer.
- `MailerMisconfigured`: our side is wrong (the server refused the login or the sender address, wants
  STARTTLS we did not do, or does not offer what we asked for). Not the recipient's fault, so it must
  not be recorded against them; it propagates like a transient error, and messages that keep failing
  end in the dead-letter queue, to be replayed once the configuration is fixed.
"""

from __future__ import annotations

from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Protocol

from vid2mp3.errors import DependencyUnavailable


class MailError(Exception):
    """A message was not accepted. `smtp_code` is the server's reply code when there was one."""

    def __init__(self, message: str, *, smtp_code: int | None = None) -> None:
        super().__init__(message)
        self.smtp_code = smtp_code


class TransientMailError(MailError, DependencyUnavailable):
    """Try again later: a 4xx reply, or the server could not be reached or went away."""


class UndeliverableRecipient(MailError):
    """The server refused the message for its recipient for good (a 5xx reply)."""


class MailerMisconfigured(MailError):
    """The server refuses us, not the recipient: credentials, sender, TLS or an unsupported feature."""


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Deliver `message` to every address in its To/Cc/Bcc headers; return once the server accepted it.

        Raises TransientMailError, UndeliverableRecipient or MailerMisconfigured (module docstring).
        When some recipients were accepted and others refused, the message was sent: no error.
        """


def sender_domain(mail_from: str) -> str | None:
    """The domain of a MAIL_FROM value ("vid2mp3 <no-reply@vid2mp3.local>" -> "vid2mp3.local"), if any."""
    for _, addr in getaddresses([mail_from]):
        try:
            domain = Address(addr_spec=addr).domain
        except (ValueError, IndexError, HeaderParseError):
            continue
        if domain:
            return domain
    return None

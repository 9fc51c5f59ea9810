"""SMTP adapter (smtplib): one connection per message, optional STARTTLS and login, bounded by timeouts.

The server's answer is mapped onto the port's three kinds of failure (vid2mp3.mail): 4xx and network
trouble are transient, 5xx to the recipient or to the message is undeliverable, 5xx to anything that is
about us (login, sender, STARTTLS, greeting) is a misconfiguration.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from vid2mp3.mail import MailerMisconfigured, MailError, TransientMailError, UndeliverableRecipient, sender_domain
from vid2mp3.settings import Settings

# Each socket operation (connect, every command and reply) gets this long. A notify batch stops at its
# first transient error, so a dead server costs one timeout per invocation, not one per message.
DEFAULT_TIMEOUT_S = 10.0


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())[:300]


def _by_code(code: int, detail: str, permanent: type[MailError]) -> MailError:
    """4xx (and anything that is not a 5xx) is worth retrying; a 5xx is `permanent`."""
    if 500 <= code < 600:
        return permanent(detail, smtp_code=code)
    return TransientMailError(detail, smtp_code=code)


def classify(exc: Exception, stage: str, where: str) -> MailError:
    """The port's error for what smtplib raised at `stage` (connect, ehlo, starttls, login, send)."""
    prefix = f"SMTP {where}, {stage}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = list(exc.recipients.values())
        codes = [code for code, _ in replies]
        detail = "; ".join(f"{code} {_text(msg)}" for code, msg in replies) or "every recipient was refused"
        # One 4xx among the refusals is reason enough to try again: nothing was sent.
        if not codes or any(not 500 <= code < 600 for code in codes):
            return TransientMailError(f"{prefix}: recipient deferred: {detail}",
                                      smtp_code=min(codes) if codes else None)
        return UndeliverableRecipient(f"{prefix}: recipient refused: {detail}", smtp_code=codes[0])
    if isinstance(exc, smtplib.SMTPDataError):
        # The message itself was refused (content policy, size, "mailbox unavailable" at end of data).
        return _by_code(exc.smtp_code, f"{prefix}: message refused: {exc.smtp_code} {_text(exc.smtp_error)}",
                        UndeliverableRecipient)
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return _by_code(exc.smtp_code, f"{prefix}: sender {exc.sender!r} refused: {exc.smtp_code} "
                        f"{_text(exc.smtp_error)}", MailerMisconfigured)
    if isinstance(exc, smtplib.SMTPResponseException):
        # Greeting (SMTPConnectError), HELO/EHLO, AUTH, STARTTLS: about us, not the recipient.
        return _by_code(exc.smtp_code, f"{prefix}: {exc.smtp_code} {_text(exc.smtp_error)}", MailerMisconfigured)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return TransientMailError(f"{prefix}: the server closed the connection ({exc})")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        if stage == "send":  # an internationalised address and a server without SMTPUTF8
            return UndeliverableRecipient(f"{prefix}: {exc}")
        return MailerMisconfigured(f"{prefix}: {exc}")
    if isinstance(exc, smtplib.SMTPException):
        return MailerMisconfigured(f"{prefix}: {exc}")  # e.g. "No suitable authentication method found."
    if isinstance(exc, ssl.SSLCertVerificationError):
        return MailerMisconfigured(f"{prefix}: the server's certificate was not accepted ({exc.verify_message})")
    if isinstance(exc, OSError):  # refused, unreachable, DNS, timeout, TLS handshake cut short
        return TransientMailError(f"{prefix}: {type(exc).__name__}: {exc}")
    raise exc


class SmtpMailer:
    """Sends each message over its own SMTP connection: connect, EHLO, [STARTTLS, EHLO], [AUTH], send, QUIT."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = DEFAULT_TIMEOUT_S,
        local_hostname: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username or None
        self._password = password or ""
        self.starttls = starttls
        self.timeout = timeout
        # The name we greet with. smtplib's default asks the resolver (socket.getfqdn()), which can stall
        # for seconds where reverse DNS is broken; any name is acceptable to a submission server.
        self.local_hostname = local_hostname or "localhost"
        self._ssl_context = ssl_context

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float = DEFAULT_TIMEOUT_S) -> SmtpMailer:
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
            timeout=timeout,
            local_hostname=sender_domain(settings.mail_from),
        )

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def send(self, message: EmailMessage) -> None:
        stage = "connect"
        client: smtplib.SMTP | None = None
        try:
            client = smtplib.SMTP(self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout)
            stage = "ehlo"
            client.ehlo_or_helo_if_needed()
            if self.starttls:
                stage = "starttls"
                client.starttls(context=self._ssl_context or ssl.create_default_context())
                client.ehlo()
            if self.username:
                stage = "login"
                client.login(self.username, self._password)
            stage = "send"
            # Recipients refused while others were accepted come back here, not as an error: the message
            # went out, which is what the port reports.
            client.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise classify(exc, stage, self.where) from exc
        finally:
            if client is not None:
                _quit(client)


def _quit(client: smtplib.SMTP) -> None:
    """Say goodbye, ignoring any trouble: once the message was accepted, a failed QUIT changes nothing."""
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


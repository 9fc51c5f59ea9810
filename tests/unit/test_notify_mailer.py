"""The SMTP adapter's error taxonomy (vid2mp3.mail.smtp.classify), without a network."""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage

import pytest

from vid2mp3.errors import DependencyUnavailable
from vid2mp3.mail import (
    MailerMisconfigured,
    TransientMailError,
    UndeliverableRecipient,
    sender_domain,
)
from vid2mp3.mail.memory import MemoryMailer
from vid2mp3.mail.smtp import SmtpMailer, classify
from vid2mp3.settings import load_settings


def kind(exc, stage="send"):
    return type(classify(exc, stage, "mail:25"))


@pytest.mark.parametrize("exc, expected", [
    (smtplib.SMTPRecipientsRefused({"a@b.c": (550, b"5.1.1 no such user")}), UndeliverableRecipient),
    (smtplib.SMTPRecipientsRefused({"a@b.c": (451, b"4.3.0 try later")}), TransientMailError),
    (smtplib.SMTPRecipientsRefused({"a@b.c": (550, b"no"), "d@e.f": (452, b"full")}), TransientMailError),
    (smtplib.SMTPDataError(554, b"5.7.1 rejected as spam"), UndeliverableRecipient),
    (smtplib.SMTPDataError(451, b"4.3.0 local error"), TransientMailError),
    (smtplib.SMTPSenderRefused(553, b"5.7.1 sender not allowed", "n@x"), MailerMisconfigured),
    (smtplib.SMTPSenderRefused(421, b"4.7.0 too many connections", "n@x"), TransientMailError),
    (smtplib.SMTPAuthenticationError(535, b"5.7.8 bad credentials"), MailerMisconfigured),
    (smtplib.SMTPAuthenticationError(454, b"4.7.0 temporary auth failure"), TransientMailError),
    (smtplib.SMTPConnectError(421, b"service not available"), TransientMailError),
    (smtplib.SMTPConnectError(554, b"no SMTP service here"), MailerMisconfigured),
    (smtplib.SMTPHeloError(501, b"bad helo"), MailerMisconfigured),
    (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), TransientMailError),
    (ConnectionRefusedError(111, "Connection refused"), TransientMailError),
    (TimeoutError("timed out"), TransientMailError),
    (socket.gaierror(-2, "Name or service not known"), TransientMailError),
    (smtplib.SMTPException("No suitable authentication method found."), MailerMisconfigured),
])
def test_classify(exc, expected):
    assert kind(exc) is expected


def test_smtputf8_missing_is_the_recipients_problem_at_send_but_ours_at_starttls():
    exc = smtplib.SMTPNotSupportedError("SMTPUTF8 required")
    assert kind(exc, "send") is UndeliverableRecipient
    assert kind(exc, "starttls") is MailerMisconfigured


def test_a_certificate_that_does_not_verify_is_misconfiguration():
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_message = "self-signed certificate"
    assert kind(exc, "starttls") is MailerMisconfigured


def test_transient_errors_are_dependency_unavailable_and_keep_the_code():
    error = classify(smtplib.SMTPRecipientsRefused({"a@b.c": (451, b"later")}), "send", "mail:25")
    assert isinstance(error, DependencyUnavailable)
    assert error.smtp_code == 451
    assert "mail:25" in str(error) and "451 later" in str(error)


def test_nobody_listening_is_transient():
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@b.c", "d@e.f", "x"
    with pytest.raises(TransientMailError):
        SmtpMailer("127.0.0.1", port, timeout=2).send(message)


def test_from_settings():
    settings = load_settings({"SMTP_HOST": "mail.example", "SMTP_PORT": "587", "SMTP_USERNAME": "u",
                              "SMTP_PASSWORD": "p", "SMTP_STARTTLS": "true",
                              "MAIL_FROM": "vid2mp3 <no-reply@vid2mp3.example>"})
    mailer = SmtpMailer.from_settings(settings)
    assert (mailer.host, mailer.port, mailer.username, mailer.starttls) == ("mail.example", 587, "u", True)
    assert mailer.local_hostname == "vid2mp3.example"


def test_sender_domain():
    assert sender_domain("vid2mp3 <no-reply@vid2mp3.local>") == "vid2mp3.local"
    assert sender_domain("plain@example.org") == "example.org"
    assert sender_domain("nobody") is None


def test_memory_mailer_fails_on_request_then_delivers():
    mailer = MemoryMailer()
    mailer.fail_next(TransientMailError("451"), times=2)
    message = EmailMessage()
    message["To"] = "a@b.c"
    for _ in range(2):
        with pytest.raises(TransientMailError):
            mailer.send(message)
    mailer.send(message)
    assert mailer.attempts == 3 and len(mailer.outbox) == 1

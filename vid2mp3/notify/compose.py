"""The notification email: multipart/alternative, plain text and HTML, built with the SMTP policy.

Header injection is impossible by construction. The subject is fixed text; the recipient goes in as a
parsed `Address` (one addr-spec, or InvalidRecipient); the correlation id only when it is a plain token;
and `policy.SMTP` refuses any header value with CR or LF in it. The filename and the failure reason are
data in the bodies only: control, format and line-separator characters are replaced, and the HTML part
escapes them.
"""

from __future__ import annotations

import html
import unicodedata
from datetime import UTC, datetime
from email import policy
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import quote

from vid2mp3.notify import Completed, Notification
from vid2mp3.notify.events import safe_correlation_id

SUBJECTS = {
    "completed": "Your MP3 is ready",
    "failed": "We could not convert your video",
}
# Characters that could forge lines, reorder text (bidi overrides) or hide in a body: control (Cc),
# format (Cf), line and paragraph separators (Zl, Zp) and lone surrogates (Cs).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_WHITESPACE = frozenset("\t\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
FILENAME_LIMIT = 200
REASON_LIMIT = 500
GENERIC_REASON = "The file could not be converted."


class InvalidRecipient(ValueError):
    """The recipient is not one plain email address; no server could deliver to it."""


def display_text(value: str, limit: int) -> str:
    """`value` fit to show inside a body: one line, unsafe characters replaced, at most `limit` characters."""
    cleaned = "".join(
        " " if ch in _WHITESPACE else "\ufffd" if unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch
        for ch in value
    )
    cleaned = " ".join(cleaned.split())
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1].rstrip() + "\u2026"
    return cleaned


def human_size(size: int) -> str:
    """4812345 -> '4.8 MB (4,812,345 bytes)'; SI units, as file managers show them."""
    if size < 1000:
        return f"{size:,} bytes"
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 999.95 or unit == "TB":
            return f"{value:.1f} {unit} ({size:,} bytes)"
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    """205.4 -> '3:25', 3725 -> '1:02:05'."""
    total = int(seconds + 0.5)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def human_bitrate(bitrate: str | None) -> str | None:
    """'192k' -> '192 kbit/s'; anything else shown as given (made safe), None when absent."""
    if not bitrate:
        return None
    text = bitrate.strip().lower()
    if text.endswith("k") and text[:-1].isdigit():
        return f"{int(text[:-1])} kbit/s"
    return display_text(bitrate, 40)


def human_time(moment: datetime) -> str:
    """2026-05-04 13:05 UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def download_url(public_base_url: str, job_id: str) -> str:
    return f"{public_base_url.rstrip('/')}/videos/{quote(job_id, safe='')}/mp3"


def recipient(email: str) -> Address:
    try:
        address = Address(addr_spec=email.strip())
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise InvalidRecipient(f"not a deliverable email address ({exc})") from None
    if not address.domain or not address.username:
        raise InvalidRecipient("not a deliverable email address (no local part or domain)")
    return address


def _facts_text(rows: list[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in rows) + 1
    return "\n".join(f"  {(label + ':').ljust(width)} {value}" for label, value in rows)


def _facts_html(rows: list[tuple[str, str]]) -> str:
    cells = "\n".join(
        f'<tr><th align="left" style="padding:2px 16px 2px 0;font-weight:normal;color:#555">'
        f"{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in rows
    )
    return f"<table cellspacing=\"0\" cellpadding=\"0\">\n{cells}\n</table>"


def _html_page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title></head>\n"
        "<body style=\"font-family:sans-serif;line-height:1.5;color:#222\">\n"
        f"{body}\n</body></html>\n"
    )


def _bodies(notification: Notification, public_base_url: str) -> tuple[str, str]:
    name = display_text(notification.filename, FILENAME_LIMIT) or "(no name)"
    footer_text = (f"You receive this email because this address uploaded a video to vid2mp3.\n"
                   f"Job {notification.job_id}")
    footer_html = (f'<p style="color:#777;font-size:smaller">You receive this email because this address '
                   f"uploaded a video to vid2mp3.<br>Job {html.escape(notification.job_id)}</p>")
    if isinstance(notification, Completed):
        rows = [("File", name), ("MP3 size", human_size(notification.mp3_size)),
                ("Duration", human_duration(notification.duration_s))]
        bitrate = human_bitrate(notification.bitrate)
        if bitrate:
            rows.append(("Bitrate", bitrate))
        link = download_url(public_base_url, notification.job_id)
        until = ""
        if notification.expires_at is not None:
            until = f"The link works until {human_time(notification.expires_at)}; then the MP3 is deleted."
        text = (
            "Hello,\n\nYour video has been converted to MP3.\n\n"
            f"{_facts_text(rows)}\n\n"
            f"Download the MP3 (sign-in required):\n{link}\n"
            + (f"{until}\n" if until else "") + "\n"
            f"{footer_text}\n"
        )
        body = (
            "<p>Hello,</p>\n<p>Your video has been converted to MP3.</p>\n"
            f"{_facts_html(rows)}\n"
            f'<p><a href="{html.escape(link, quote=True)}">Download the MP3</a> (sign-in required)<br>\n'
            f"<span style=\"color:#555;font-size:smaller\">{html.escape(link)}</span></p>\n"
            + (f"<p>{html.escape(until)}</p>\n" if until else "")
            + f"{footer_html}"
        )
        return text, _html_page(SUBJECTS["completed"], body)
    reason = display_text(notification.error_message, REASON_LIMIT) or GENERIC_REASON
    rows = [("File", name), ("Reason", reason)]
    text = (
        "Hello,\n\nWe could not convert your video to MP3.\n\n"
        f"{_facts_text(rows)}\n\n"
        "You can upload the file again, or another copy of it.\n\n"
        f"{footer_text}\n"
    )
    body = (
        "<p>Hello,</p>\n<p>We could not convert your video to MP3.</p>\n"
        f"{_facts_html(rows)}\n"
        "<p>You can upload the file again, or another copy of it.</p>\n"
        f"{footer_html}"
    )
    return text, _html_page(SUBJECTS["failed"], body)


def compose(
    notification: Notification,
    *,
    mail_from: str,
    public_base_url: str,
    message_id: str,
    date: datetime,
) -> EmailMessage:
    """The email for `notification`. Raises InvalidRecipient when its address cannot be written as one."""
    to = recipient(notification.email)
    text, page = _bodies(notification, public_base_url)
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = mail_from
    message["To"] = to
    message["Subject"] = SUBJECTS[notification.kind]
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    # RFC 3834: an automatic message; vacation responders and the like should not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Vid2mp3-Job-Id"] = notification.job_id
    correlation_id = safe_correlation_id(notification.correlation_id)
    if correlation_id:
        message["X-Correlation-Id"] = correlation_id
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(page, subtype="html", cte="quoted-printable")
    return message


"""The notification email (vid2mp3.notify.compose): content, structure, and no way to inject headers."""

from __future__ import annotations

import email
import uuid
from datetime import UTC, datetime
from email import policy

import pytest

from vid2mp3.notify import Completed, Failed
from vid2mp3.notify.compose import (
    SUBJECTS,
    InvalidRecipient,
    compose,
    display_text,
    human_duration,
    human_size,
)

JOB = str(uuid.uuid4())
BASE = "http://127.0.0.1:4566/_aws/execute-api/abc123/v1"
DATE = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def build(n, **kwargs):
    args = dict(mail_from="vid2mp3 <no-reply@vid2mp3.local>", public_base_url=BASE,
                message_id="<1@vid2mp3.local>", date=DATE)
    args.update(kwargs)
    return compose(n, **args)


def reparse(message):
    """What a receiving mail client sees: the bytes on the wire, parsed again."""
    return email.message_from_bytes(message.as_bytes(policy=policy.SMTP), policy=policy.default)


def parts(message):
    parsed = reparse(message)
    text = parsed.get_body(("plain",)).get_content()
    page = parsed.get_body(("html",)).get_content()
    return parsed, text, page


def completed(**changes):
    values = dict(job_id=JOB, email="ada@example.com", filename="holiday.mp4", mp3_size=4_812_345,
                  duration_s=205.4, bitrate="192k", correlation_id="corr-1234")
    values.update(changes)
    return Completed(**values)


def failed(**changes):
    values = dict(job_id=JOB, email="ada@example.com", filename="holiday.mp4", error_code="unsupported_media",
                  error_message="This file has no audio track.", correlation_id="corr-1234")
    values.update(changes)
    return Failed(**values)


def test_completion_email_has_the_facts_and_the_download_link():
    parsed, text, page = parts(build(completed()))
    assert parsed["Subject"] == SUBJECTS["completed"] == "Your MP3 is ready"
    assert parsed["To"] == "ada@example.com"
    assert parsed["From"] == "vid2mp3 <no-reply@vid2mp3.local>"
    assert parsed["Message-ID"] == "<1@vid2mp3.local>"
    assert parsed["X-Correlation-Id"] == "corr-1234"
    assert parsed["X-Vid2mp3-Job-Id"] == JOB
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_content_type() == "multipart/alternative"
    link = f"{BASE}/videos/{JOB}/mp3"
    for body in (text, page):
        assert "holiday.mp4" in body
        assert "4.8 MB (4,812,345 bytes)" in body
        assert "3:25" in body
        assert "192 kbit/s" in body
        assert link in body
    assert f'href="{link}"' in page


def test_failure_email_has_the_filename_and_the_reason():
    parsed, text, page = parts(build(failed()))
    assert parsed["Subject"] == "We could not convert your video"
    for body in (text, page):
        assert "holiday.mp4" in body
        assert "This file has no audio track." in body
        assert "/mp3" not in body


def test_failure_without_a_message_gets_a_generic_reason():
    _, text, _ = parts(build(failed(error_message="  ")))
    assert "The file could not be converted." in text


HOSTILE = 'evil\r\nBcc: victim@example.com\r\n\r\n<script>alert(1)</script>\u202egpj.exe'


def test_a_hostile_filename_stays_data_in_the_body():
    message = build(completed(filename=HOSTILE))
    raw = message.as_bytes(policy=policy.SMTP)
    parsed, text, page = parts(message)
    assert parsed["Bcc"] is None
    assert b"\nBcc:" not in raw and b"\r\nBcc:" not in raw
    assert "Bcc" not in parsed["Subject"]
    # one line in the text part, the bidi override replaced, the markup escaped in the HTML part
    line = next(line for line in text.splitlines() if "File:" in line)
    assert "Bcc: victim@example.com" in line and "\u202e" not in line
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_a_hostile_reason_is_escaped_too():
    _, text, page = parts(build(failed(error_message="<b>bad</b>\nForged: line")))
    assert "<b>" not in page and "&lt;b&gt;bad&lt;/b&gt;" in page
    assert "\nForged: line" not in text


@pytest.mark.parametrize("address", ["a@b.com\r\nBcc: x@y.z", "not an address", "a@b.com, c@d.com", "", "x@"])
def test_a_recipient_that_is_not_one_address_is_refused(address):
    with pytest.raises(InvalidRecipient):
        build(completed(email=address))


def test_a_correlation_id_that_is_not_a_token_is_left_out():
    parsed = reparse(build(completed(correlation_id="a\r\nBcc: x@y.z")))
    assert parsed["X-Correlation-Id"] is None and parsed["Bcc"] is None


def test_non_ascii_filenames_survive_the_wire():
    name = "Fête à Zürich \u2013 日本.mkv"
    _, text, page = parts(build(completed(filename=name)))
    assert name in text and name in page


def test_very_long_filenames_are_shortened():
    _, text, _ = parts(build(completed(filename="a" * 5000 + ".mp4")))
    line = next(line for line in text.splitlines() if "File:" in line)
    assert len(line) < 260 and line.endswith("\u2026")


def test_formatting_helpers():
    assert human_size(999) == "999 bytes"
    assert human_size(1_500) == "1.5 kB (1,500 bytes)"
    assert human_size(2_000_000_000) == "2.0 GB (2,000,000,000 bytes)"
    assert human_duration(0.4) == "0:00"
    assert human_duration(59.6) == "1:00"
    assert human_duration(3725) == "1:02:05"
    assert display_text("a\tb\nc\x00d\u2028e", 100) == "a b c\ufffdd e"

"""Streaming multipart parsing into a temporary file."""

from __future__ import annotations

import base64
import hashlib

import pytest

from tests.support.apigw import multipart_body
from vid2mp3.bodies import clean_content_type, clean_filename, decoded_length, event_body_chunks
from vid2mp3.errors import InvalidInput, PayloadTooLarge
from vid2mp3.multipart import parse_upload, spooled_upload


def test_file_and_fields_in_small_chunks(tmp_path):
    data = bytes(range(256)) * 300
    body, ctype = multipart_body(data, fields={"bitrate": " 128k ", "other": "ignored"})
    chunks = [body[i:i + 7] for i in range(0, len(body), 7)]
    form = parse_upload(chunks, ctype, tmp_path, max_bytes=len(data), fields=["bitrate"])
    assert form.fields == {"bitrate": "128k"}
    assert form.file is not None
    assert form.file.path.read_bytes() == data
    assert form.file.size == len(data) and form.file.sha256 == hashlib.sha256(data).hexdigest()
    assert form.file.filename == "clip.mp4" and form.file.content_type == "video/mp4"


def test_stops_one_byte_past_the_limit(tmp_path):
    body, ctype = multipart_body(b"x" * 10_000)
    with pytest.raises(PayloadTooLarge):
        parse_upload([body[i:i + 1000] for i in range(0, len(body), 1000)], ctype, tmp_path, max_bytes=9_999)
    # It stopped early: the spool holds no more than the limit.
    assert (tmp_path / "upload.bin").stat().st_size <= 9_999


def test_no_file_part_and_empty_file(tmp_path):
    body, ctype = multipart_body(None, fields={"bitrate": "128k"})
    form = parse_upload([body], ctype, tmp_path, max_bytes=10, fields=["bitrate"])
    assert form.file is None and form.fields == {"bitrate": "128k"}
    body, ctype = multipart_body(b"")
    form = parse_upload([body], ctype, tmp_path, max_bytes=10)
    assert form.file is not None and form.file.size == 0


@pytest.mark.parametrize(("ctype", "code"), [
    ("application/json", "invalid_content_type"),
    ("multipart/form-data", "invalid_content_type"),  # no boundary
])
def test_not_multipart(tmp_path, ctype, code):
    with pytest.raises(InvalidInput) as exc:
        parse_upload([b"{}"], ctype, tmp_path, max_bytes=10)
    assert exc.value.code == code


def test_truncated_body_and_two_files(tmp_path):
    body, ctype = multipart_body(b"x" * 1000)
    with pytest.raises(InvalidInput) as exc:
        parse_upload([body[:-30]], ctype, tmp_path, max_bytes=10_000)
    assert exc.value.code == "invalid_multipart"
    one, _ = multipart_body(b"a" * 10)
    two = one.replace(b"------vid2mp3test--\r\n", b"") + one
    with pytest.raises(InvalidInput) as exc:
        parse_upload([two], ctype, tmp_path, max_bytes=10_000)
    assert exc.value.code == "multiple_files"


def test_over_long_field(tmp_path):
    body, ctype = multipart_body(b"x", fields={"bitrate": "9" * 10_000})
    with pytest.raises(InvalidInput) as exc:
        parse_upload([body], ctype, tmp_path, max_bytes=10, fields=["bitrate"])
    assert exc.value.code == "field_too_long"


def test_spooled_upload_removes_its_directory():
    body, ctype = multipart_body(b"abc")
    with spooled_upload([body], ctype, max_bytes=10) as form:
        assert form.file is not None
        path = form.file.path
        assert path.exists()
    assert not path.exists() and not path.parent.exists()
    with pytest.raises(PayloadTooLarge), spooled_upload([body], ctype, max_bytes=1) as form:
        pass


def test_event_body_chunks_decode_base64_slice_by_slice():
    raw = bytes(range(256)) * 1000 + b"tail"
    encoded = base64.b64encode(raw).decode()
    chunks = list(event_body_chunks(encoded, base64_encoded=True, size=1000))
    assert b"".join(chunks) == raw and max(len(c) for c in chunks) <= 1000
    assert decoded_length(encoded, base64_encoded=True) == len(raw)
    assert b"".join(event_body_chunks("héllo", base64_encoded=False, size=2)) == "héllo".encode()
    assert decoded_length("héllo", base64_encoded=False) == 6
    assert list(event_body_chunks(None, base64_encoded=True)) == []
    with pytest.raises(InvalidInput):
        list(event_body_chunks("not base64!!", base64_encoded=True))


@pytest.mark.parametrize(("given", "kept"), [
    ("clip.mp4", "clip.mp4"),
    ("C:\\fakepath\\My Video.mov", "My Video.mov"),
    ("../../etc/passwd", "passwd"),
    ("a\x00b\x1f\x7fc.mkv", "abc.mkv"),
    ("e\u0301te\u0301.mp4", "été.mp4"),  # NFC
    ("...", ""),
])
def test_clean_filename(given, kept):
    assert clean_filename(given) == kept


def test_clean_content_type():
    assert clean_content_type("Video/MP4; codecs=avc1") == "video/mp4"
    assert clean_content_type(None) == "application/octet-stream"
    assert clean_content_type("text/html\r\nX: y") == "application/octet-stream"

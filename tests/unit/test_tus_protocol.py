"""tus 1.0.0 headers: what clients send parses, what they must not send is a clear 400."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from vid2mp3.errors import InvalidInput, PreconditionFailed, UnsupportedMedia
from vid2mp3.uploads import tus


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_metadata_as_tus_clients_send_it():
    header = f"filename {b64('Vidéo, été.mp4')},filetype {b64('video/mp4')},is_confidential, bitrate {b64('320k')}"
    assert tus.parse_metadata(header) == {"filename": "Vidéo, été.mp4", "filetype": "video/mp4",
                                          "is_confidential": "", "bitrate": "320k"}
    assert tus.parse_metadata(None) == {} and tus.parse_metadata("  ") == {}


@pytest.mark.parametrize("header", [
    "filename not-base64!", "filename a b", f"filename {b64('a')},filename {b64('b')}", ",", "x" * 5000,
    "name " + base64.b64encode(bytes([0xFF, 0xFE])).decode(),  # not UTF-8
])
def test_malformed_metadata_is_400(header):
    with pytest.raises(InvalidInput) as refused:
        tus.parse_metadata(header)
    assert refused.value.code == "invalid_metadata"


@pytest.mark.parametrize(("value", "ok"), [("0", 0), ("1073741824", 1073741824), (" 12 ", 12)])
def test_lengths_and_offsets(value, ok):
    assert tus.parse_length(value) == ok and tus.parse_offset(value) == ok


@pytest.mark.parametrize("value", ["-1", "1e6", "12.5", "abc", "9" * 20])
def test_bad_lengths_and_offsets_are_400(value):
    with pytest.raises(InvalidInput):
        tus.parse_length(value)
    with pytest.raises(InvalidInput):
        tus.parse_offset(value)


def test_length_is_required_and_deferral_is_not_offered():
    with pytest.raises(InvalidInput) as refused:
        tus.parse_length(None)
    assert refused.value.code == "upload_length_missing"


def test_checksums_of_every_offered_algorithm():
    data = b"some bytes of a video"
    for name in tus.CHECKSUM_ALGORITHMS:
        header = f"{name} {base64.b64encode(hashlib.new(name, data).digest()).decode()}"
        checksum = tus.parse_checksum(header)
        assert tus.checksum_matches(checksum, data) and not tus.checksum_matches(checksum, data + b"!")
    assert tus.parse_checksum(None) is None and tus.checksum_matches(None, data)
    for bad in ("sha1", "sha1 !!!", "sha1 a b"):
        with pytest.raises(InvalidInput):
            tus.parse_checksum(bad)


def test_version_and_content_type_rules():
    tus.check_version({"tus-resumable": "1.0.0"})
    for headers in ({}, {"tus-resumable": "0.2.2"}):
        with pytest.raises(PreconditionFailed):
            tus.check_version(headers)
    tus.check_content_type({"content-type": "application/offset+octet-stream; charset=x"})
    with pytest.raises(UnsupportedMedia):
        tus.check_content_type({"content-type": "application/octet-stream"})


def test_upload_expires_is_an_http_date_in_gmt():
    paris = timezone(timedelta(hours=1))
    assert tus.http_date(datetime(2026, 12, 1, 13, 30, tzinfo=paris)) == "Tue, 01 Dec 2026 12:30:00 GMT"
    assert tus.http_date(datetime(2026, 12, 1, 12, 30, tzinfo=UTC)) == "Tue, 01 Dec 2026 12:30:00 GMT"


def test_cors_headers():
    assert tus.cors_headers(None, ("*",)) == {}
    assert tus.cors_headers("https://a.example", ("https://b.example",)) == {}
    assert tus.cors_headers("https://a.example", ("*",))["Access-Control-Allow-Origin"] == "*"
    pre = tus.cors_headers("https://a.example", ("https://a.example",), preflight=True)
    assert pre["Access-Control-Allow-Origin"] == "https://a.example" and pre["Vary"] == "Origin"
    assert "Upload-Checksum" in pre["Access-Control-Allow-Headers"] and pre["Access-Control-Max-Age"]

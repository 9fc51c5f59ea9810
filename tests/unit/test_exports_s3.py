"""The S3 exporter's calls (moto stands for S3 here; the e2e tier uses the emulator's real S3 API)."""

from __future__ import annotations

import os
import urllib.parse

import boto3
import pytest
from moto import mock_aws

from vid2mp3.exports import export_key
from vid2mp3.exports.s3 import S3Exporter

BUCKET = "vid2mp3-exports"


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def test_export_in_parts_then_link_with_the_download_headers(s3):
    exporter = S3Exporter(BUCKET, url_ttl_s=120)
    key = export_key("4d3c2b1a-0000-4000-8000-000000000000")
    data = os.urandom(20 * 1024 * 1024 + 3)  # several multipart parts
    disposition = "attachment; filename=\"Concert.mp3\"; filename*=UTF-8''Concert.mp3"
    assert exporter.link(key, size=len(data), content_disposition=disposition, content_type="audio/mpeg") is None
    exporter.export(key, (data[i:i + 261120] for i in range(0, len(data), 261120)), size=len(data))
    stored = s3.get_object(Bucket=BUCKET, Key=key)
    assert stored["Body"].read() == data and stored["ContentType"] == "audio/mpeg"
    link = exporter.link(key, size=len(data), content_disposition=disposition, content_type="audio/mpeg")
    assert link is not None
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
    assert query["response-content-disposition"] == [disposition]
    assert query["response-content-type"] == ["audio/mpeg"] and query["X-Amz-Expires"] == ["120"]
    # A copy of another size (an earlier MP3 under the same key) is not linked.
    assert exporter.link(key, size=len(data) + 1, content_disposition=disposition, content_type="audio/mpeg") is None
    exporter.delete(key)
    exporter.delete(key)  # a missing copy is fine
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_links_are_signed_for_the_public_endpoint(s3):
    exporter = S3Exporter(BUCKET, public_endpoint_url="http://localhost:4566")
    exporter.export("mp3/x.mp3", [b"abc"], size=3)
    link = exporter.link("mp3/x.mp3", size=3, content_disposition="attachment", content_type="audio/mpeg")
    assert link is not None and link.startswith(f"http://localhost:4566/{BUCKET}/mp3/x.mp3?")

"""The exporter on S3 (boto3): copies in the export bucket, presigned GET URLs for clients.

boto3 comes with the Lambda Python runtime (and with the local emulator's workers), so it is not in
the dependencies layer: it would take the upload function past Lambda's 250 MB of code and layers.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from vid2mp3.errors import DependencyUnavailable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

UNAVAILABLE = "The export storage is unavailable."
PART_BYTES = 8 * 1024 * 1024


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (what boto3's upload reads from)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class S3Exporter:
    """Clients are made on first use: most requests of the upload function never touch S3, and boto3 costs
    a cold start some 13 MB and 100 ms."""

    def __init__(self, bucket: str, *, endpoint_url: str | None = None, public_endpoint_url: str | None = None,
                 url_ttl_s: int = 300, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self.url_ttl_s = url_ttl_s
        self._endpoint_url = endpoint_url
        self._public_endpoint_url = public_endpoint_url
        self._client = client
        self._signer_client: S3Client | None = None

    def _config(self) -> Any:
        from botocore.config import Config

        return Config(signature_version="s3v4", retries={"max_attempts": 3, "mode": "standard"},
                      # An emulator on an IP address or localhost has no per-bucket host names.
                      s3={"addressing_style": "path"} if self._endpoint_url or self._public_endpoint_url else {})

    @property
    def _s3(self) -> S3Client:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3", endpoint_url=self._endpoint_url, config=self._config())
        return self._client

    @property
    def _signer(self) -> S3Client:
        """Links are signed for the address clients use (the same as ours, unless the functions reach the
        storage by another name, as in Docker Compose); signing is local, this client never connects."""
        if self._public_endpoint_url is None:
            return self._s3
        if self._signer_client is None:
            import boto3

            self._signer_client = boto3.client("s3", endpoint_url=self._public_endpoint_url, config=self._config())
        return self._signer_client

    def link(self, key: str, *, size: int, content_disposition: str, content_type: str) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise DependencyUnavailable(UNAVAILABLE) from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable(UNAVAILABLE) from exc
        if int(head.get("ContentLength", -1)) != size:
            return None
        return self._signer.generate_presigned_url(
            "get_object", ExpiresIn=self.url_ttl_s,
            Params={"Bucket": self.bucket, "Key": key, "ResponseContentDisposition": content_disposition,
                    "ResponseContentType": content_type})

    def export(self, key: str, chunks: Iterable[bytes], *, size: int) -> None:
        from boto3.exceptions import S3UploadFailedError
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        transfer = TransferConfig(multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES, max_concurrency=2)
        try:
            self._s3.upload_fileobj(io.BufferedReader(_ChunkReader(chunks), PART_BYTES), self.bucket, key,
                                    ExtraArgs={"ContentType": "audio/mpeg"}, Config=transfer)
        except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
            raise DependencyUnavailable(UNAVAILABLE) from exc

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise DependencyUnavailable(UNAVAILABLE) from exc

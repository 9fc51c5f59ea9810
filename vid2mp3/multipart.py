"""Streaming multipart/form-data uploads into a temporary file (streaming-form-data).

The file part goes to disk chunk by chunk while its SHA-256 and size are computed; the parse stops
as soon as the file grows past ``max_bytes`` (PayloadTooLarge, 413), so an oversized upload never
takes more than one chunk beyond the limit on disk. Other fields are kept only when named, and only
up to a few hundred bytes each.

The parser and its dependencies (streaming-form-data brings smart_open, which imports boto3) are
imported only by the route that takes multipart bodies; the body helpers live in vid2mp3.bodies.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from streaming_form_data import StreamingFormDataParser
from streaming_form_data.parser import ParseFailedException
from streaming_form_data.targets import BaseTarget

from vid2mp3.bodies import clean_content_type, clean_filename
from vid2mp3.errors import InvalidInput, PayloadTooLarge

__all__ = ["UploadForm", "UploadedFile", "parse_upload", "spooled_upload"]

MAX_FIELD_BYTES = 256


@dataclass(frozen=True)
class UploadedFile:
    path: Path  # the spooled bytes (seekable; removed when the spooled_upload block ends)
    filename: str  # the client's name, without directories or control characters ("" when none)
    content_type: str  # the part's declared type when well-formed, else application/octet-stream
    size: int
    sha256: str


@dataclass(frozen=True)
class UploadForm:
    file: UploadedFile | None  # None when the request had no file part
    fields: dict[str, str] = field(default_factory=dict)


class _FileTarget(BaseTarget):  # type: ignore[misc]
    """Writes the part to `out`, hashing and counting; refuses a second file part and oversize."""

    def __init__(self, out: IO[bytes], max_bytes: int) -> None:
        super().__init__()
        self.out = out
        self.max_bytes = max_bytes
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.parts = 0
        self.complete = False

    def on_start(self) -> None:
        self.parts += 1
        if self.parts > 1:
            raise InvalidInput("Send exactly one file, in the field `file`.", code="multiple_files")

    def on_data_received(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise PayloadTooLarge(f"The file is larger than the limit of {_human(self.max_bytes)}.")
        self.sha256.update(chunk)
        self.out.write(chunk)

    def on_finish(self) -> None:
        self.complete = True


class _FieldTarget(BaseTarget):  # type: ignore[misc]
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.value = bytearray()
        self.seen = False

    def on_start(self) -> None:
        self.seen = True
        self.value.clear()  # a repeated field: the last one wins

    def on_data_received(self, chunk: bytes) -> None:
        self.value += chunk
        if len(self.value) > MAX_FIELD_BYTES:
            raise InvalidInput(f"The field `{self.name}` is too long.", code="field_too_long")


def parse_upload(
    chunks: Iterable[bytes],
    content_type: str,
    directory: str | os.PathLike[str],
    *,
    max_bytes: int,
    file_field: str = "file",
    fields: Iterable[str] = (),
) -> UploadForm:
    """Parse a multipart/form-data body; the file part is spooled to a new file in `directory`.

    Raises InvalidInput (400) for a body that is not multipart/form-data or is cut short, more than one
    file, or an over-long field; PayloadTooLarge (413) when the file exceeds `max_bytes`.
    """
    try:
        parser = StreamingFormDataParser(headers={"Content-Type": content_type})
    except ParseFailedException:
        raise InvalidInput(
            "Send the video as multipart/form-data, in the field `file`.", code="invalid_content_type"
        ) from None
    path = Path(directory) / "upload.bin"
    named = {name: _FieldTarget(name) for name in fields}
    with open(path, "wb") as out:
        target = _FileTarget(out, max_bytes)
        parser.register(file_field, target)
        for name, t in named.items():
            parser.register(name, t)
        try:
            for chunk in chunks:
                parser.data_received(chunk)
        except ParseFailedException:
            raise InvalidInput("The multipart body is malformed.", code="invalid_multipart") from None
    values: dict[str, str] = {}
    for name, t in named.items():
        if t.seen:
            try:
                values[name] = t.value.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise InvalidInput(f"The field `{name}` is not UTF-8 text.", code="invalid_field") from None
    if target.parts == 0:
        path.unlink(missing_ok=True)
        return UploadForm(None, values)
    if not target.complete:
        # The parser never saw the part's closing boundary: the body was cut short.
        raise InvalidInput("The multipart body ends in the middle of the file.", code="invalid_multipart")
    return UploadForm(
        UploadedFile(
            path=path,
            filename=clean_filename(target.multipart_filename or ""),
            content_type=clean_content_type(target.multipart_content_type),
            size=target.size,
            sha256=target.sha256.hexdigest(),
        ),
        values,
    )


@contextmanager
def spooled_upload(
    chunks: Iterable[bytes],
    content_type: str,
    *,
    max_bytes: int,
    fields: Iterable[str] = (),
    tmp_dir: str | None = None,
) -> Iterator[UploadForm]:
    """`parse_upload` into a private temporary directory that is removed when the block ends."""
    directory = tempfile.mkdtemp(prefix="vid2mp3-upload-", dir=tmp_dir)
    try:
        yield parse_upload(chunks, content_type, directory, max_bytes=max_bytes, fields=fields)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"

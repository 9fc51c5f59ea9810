"""Uploads one file with the real tuspy client, as a third-party Python client would, resumably: the
upload's URL is kept in a tuspy FileStorage, so the same command run again (after this process was killed,
say) continues where the server says the upload stands.

    python tus_upload.py ENDPOINT TOKEN FILE URL_STORAGE [METADATA_JSON]

Prints one JSON object per line: {"resumed_from": n} when it resumed, {"offset": n} after each part, then
{"job": url, "largest_part": n} on success or {"error": "..."} (exit 1). Parts carry a SHA-1 checksum.
"""

from __future__ import annotations

import json
import os
import sys

from tusclient import client
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from tusclient.storage.filestorage import FileStorage

PART = 4 * 1024 * 1024


def say(line: dict[str, object]) -> None:
    print(json.dumps(line), flush=True)


def main(endpoint: str, token: str, path: str, storage: str, metadata: str = "{}") -> int:
    tus = client.TusClient(endpoint, headers={"Authorization": f"Bearer {token}"})
    try:
        uploader = tus.uploader(path, chunk_size=PART, metadata=json.loads(metadata), store_url=True,
                                url_storage=FileStorage(storage), upload_checksum=True, retries=3, retry_delay=1)
        if uploader.url:
            say({"resumed_from": uploader.offset})
        size = os.path.getsize(path)
        largest = 0
        if not uploader.url:
            uploader.set_url(uploader.create_url())
            uploader.offset = 0
        while uploader.offset < size:
            largest = max(largest, uploader.get_request_length())
            uploader.upload_chunk()
            say({"offset": uploader.offset})
    except (TusCommunicationError, TusUploadFailed) as exc:
        say({"error": f"{exc} {getattr(exc, 'status_code', '')} {getattr(exc, 'response_content', b'')!r}"})
        return 1
    say({"job": uploader.request.response_headers.get("vid2mp3-job"), "upload": uploader.url,
         "largest_part": largest})
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

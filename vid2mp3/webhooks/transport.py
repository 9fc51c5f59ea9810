"""One POST of a webhook to an address already checked (vid2mp3.webhooks.targets): urllib3, with the TLS
name and the Host header of the URL's host, no redirects, no retries of its own, short timeouts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import urllib3
import urllib3.exceptions

from vid2mp3.webhooks.targets import Target

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 64 * 1024  # read and dropped: only the status matters


class TransportError(Exception):
    """No answer (refused, reset, timed out, TLS failure): the try may be repeated."""


class Transport(Protocol):
    def post(self, target: Target, addresses: Sequence[str], body: bytes, headers: Mapping[str, str]) -> int:
        """The receiver's HTTP status; TransportError when there was none."""


class Urllib3Transport:
    def __init__(self, *, connect_timeout_s: float = CONNECT_TIMEOUT_S, read_timeout_s: float = READ_TIMEOUT_S) -> None:
        self._timeout = urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s)

    def post(self, target: Target, addresses: Sequence[str], body: bytes, headers: Mapping[str, str]) -> int:
        default_port = 443 if target.scheme == "https" else 80
        host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
        if ":" in target.host:  # an IPv6 literal
            host_header = f"[{target.host}]" if target.port == default_port else f"[{target.host}]:{target.port}"
        last: Exception | None = None
        for address in addresses[:2]:  # the first two checked addresses (e.g. an IPv6 and an IPv4 one)
            pool: urllib3.HTTPConnectionPool
            if target.scheme == "https":
                pool = urllib3.HTTPSConnectionPool(address, target.port, timeout=self._timeout, retries=False,
                                                   server_hostname=target.host, assert_hostname=target.host,
                                                   cert_reqs="CERT_REQUIRED")
            else:
                pool = urllib3.HTTPConnectionPool(address, target.port, timeout=self._timeout, retries=False)
            try:
                response = pool.urlopen("POST", target.path, body=body, headers={**headers, "Host": host_header},
                                        redirect=False, retries=False, preload_content=False,
                                        assert_same_host=False)
                try:
                    response.read(MAX_RESPONSE_BYTES)
                finally:
                    response.release_conn()
                return int(response.status)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                last = exc
            finally:
                pool.close()
        raise TransportError(_describe(last))


def _describe(exc: Exception | None) -> str:
    if isinstance(exc, urllib3.exceptions.TimeoutError):
        return "timed out"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, urllib3.exceptions.NewConnectionError | ConnectionError):
        return "connection failed"
    return "no answer" if exc is None else type(exc).__name__

"""The signature of a webhook delivery, as Stripe signs its webhooks:

    Vid2mp3-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">

keyed with the account's signing secret (its text, as GET /auth/me shows it, encoded as UTF-8). The
timestamp is signed with the body, so a receiver that refuses old timestamps refuses replays too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

HEADER = "Vid2mp3-Signature"
SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_hex(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, *, now: float, tolerance_s: int = DEFAULT_TOLERANCE_S) -> bool:
    """What a receiver does: the header's timestamp is recent and one of its v1 signatures matches."""
    fields = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for key, value in fields if key.strip() == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit() or abs(now - int(stamps[0])) > tolerance_s:
        return False
    expected = signature(secret, int(stamps[0]), body)
    return any(key.strip() == "v1" and hmac.compare_digest(value, expected) for key, value in fields)

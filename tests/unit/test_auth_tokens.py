"""Access tokens: claims, pinned algorithm, kid and key rotation, expiry, tampering."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import warnings

import jwt
import pytest

from vid2mp3.auth.tokens import AUDIENCE, ISSUER, TokenService, key_id
from vid2mp3.errors import ConfigError, Unauthorized
from vid2mp3.settings import load_settings

KEY = b"k" * 32
OTHER_KEY = b"o" * 40
THIRD_KEY = b"t" * 32
USER_ID = "8d1c3f6e-3b7c-4a7e-9f0a-2f4f2d1b6c11"
EMAIL = "alice@example.com"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(now: int | None = None, ttl: int = 3600, **changes: object) -> dict[str, object]:
    now = int(time.time()) if now is None else now
    base: dict[str, object] = {
        "sub": USER_ID,
        "email": EMAIL,
        "iat": now,
        "exp": now + ttl,
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, object], key: bytes = KEY, alg: str = "HS256", kid: str | None = None) -> str:
    headers = {"kid": kid if kid is not None else key_id(key)}
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def refused(service: TokenService, token: str, code: str = "invalid_token") -> Unauthorized:
    with pytest.raises(Unauthorized) as info:
        service.verify(token)
    assert info.value.code == code
    return info.value


def test_issued_token_carries_the_required_claims() -> None:
    service = TokenService(KEY, ttl_seconds=900, clock=lambda: 1_700_000_000.7)
    issued = service.issue(USER_ID, EMAIL)
    assert issued.expires_in == 900
    payload = jwt.decode(issued.token, options={"verify_signature": False})
    assert payload == {
        "sub": USER_ID,
        "email": EMAIL,
        "ver": 0,
        "iat": 1_700_000_000,
        "exp": 1_700_000_900,
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    header = jwt.get_unverified_header(issued.token)
    assert header == {"alg": "HS256", "typ": "JWT", "kid": key_id(KEY)}


def test_round_trip() -> None:
    service = TokenService(KEY)
    verified = service.verify(service.issue(USER_ID, EMAIL).token)
    assert (verified.user_id, verified.email) == (USER_ID, EMAIL)
    assert verified.expires_at - verified.issued_at == 3600


def test_kid_is_a_short_fingerprint_not_the_key() -> None:
    kid = key_id(KEY)
    assert len(kid) == 16 and int(kid, 16) >= 0
    assert kid == key_id(KEY) and kid != key_id(OTHER_KEY)
    assert KEY.decode() not in kid and b64(KEY) not in kid


def test_rotation_accepts_the_previous_key_and_signs_with_the_new_one() -> None:
    before = TokenService(KEY)
    old_token = before.issue(USER_ID, EMAIL).token
    after = TokenService(OTHER_KEY, previous_key=KEY)
    assert after.verify(old_token).user_id == USER_ID
    new_token = after.issue(USER_ID, EMAIL).token
    assert jwt.get_unverified_header(new_token)["kid"] == key_id(OTHER_KEY)
    refused(before, new_token)  # an instance still on the old key does not know the new one


def test_once_the_previous_key_is_dropped_its_tokens_are_refused() -> None:
    old_token = TokenService(KEY).issue(USER_ID, EMAIL).token
    refused(TokenService(OTHER_KEY), old_token)
    refused(TokenService(OTHER_KEY, previous_key=THIRD_KEY), old_token)


def test_previous_key_tokens_live_at_most_one_ttl() -> None:
    # Even signed with an accepted key, a token claiming a lifetime beyond the TTL is refused: so the
    # old key is good for at most one TTL after the rotation.
    service = TokenService(OTHER_KEY, previous_key=KEY, ttl_seconds=600)
    refused(service, sign(claims(ttl=601), KEY))
    assert service.verify(sign(claims(ttl=600), KEY)).user_id == USER_ID


def test_wrong_key_with_a_borrowed_kid_is_refused() -> None:
    refused(TokenService(KEY), sign(claims(), THIRD_KEY, kid=key_id(KEY)))


def hand_signed(header: dict[str, object], payload: dict[str, object], key: bytes = KEY) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@pytest.mark.parametrize("kid", [None, "", "unknown", 5, ["x"]])
def test_missing_or_unknown_kid_is_refused(kid: object) -> None:
    header: dict[str, object] = {"alg": "HS256", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    refused(TokenService(KEY), hand_signed(header, claims()))


def test_hand_signed_tokens_are_otherwise_valid() -> None:
    token = hand_signed({"alg": "HS256", "typ": "JWT", "kid": key_id(KEY)}, claims())
    assert TokenService(KEY).verify(token).user_id == USER_ID


def test_alg_none_is_refused() -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": key_id(KEY)}).encode())
    payload = b64(json.dumps(claims()).encode())
    service = TokenService(KEY)
    refused(service, f"{header}.{payload}.")
    refused(service, f"{header}.{payload}")


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_algorithms_are_refused_even_with_the_right_key(alg: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)  # 32 bytes < HS512's 64
        token = sign(claims(), KEY, alg=alg)
    refused(TokenService(KEY), token)


def test_expired_token() -> None:
    service = TokenService(KEY, ttl_seconds=600, clock=lambda: time.time() - 3600)
    error = refused(service, service.issue(USER_ID, EMAIL).token, code="token_expired")
    assert error.message == "The access token has expired."


def test_token_from_the_future_is_refused() -> None:
    service = TokenService(KEY, clock=lambda: time.time() + 600)
    refused(service, service.issue(USER_ID, EMAIL).token)


@pytest.mark.parametrize("claim", ["sub", "iat", "exp", "iss", "aud", "email"])
def test_every_required_claim_is_required(claim: str) -> None:
    refused(TokenService(KEY), sign(claims(**{claim: None})))


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": "someone-else"},
        {"aud": "another-api"},
        {"aud": [AUDIENCE, "another-api"]},
        {"sub": ""},
        {"sub": 42},
        {"email": 7},
    ],
)
def test_wrong_claims_are_refused(changes: dict[str, object]) -> None:
    refused(TokenService(KEY), sign(claims(**changes)))


def test_tampered_tokens_are_refused() -> None:
    service = TokenService(KEY)
    token = service.issue(USER_ID, EMAIL).token
    header, payload, signature = token.split(".")
    forged = b64(json.dumps(claims(sub="someone-else")).encode())
    refused(service, f"{header}.{forged}.{signature}")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    refused(service, f"{header}.{payload}.{flipped}")


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "....", "Bearer x.y.z"])
def test_garbage_is_refused(token: str) -> None:
    refused(TokenService(KEY), token)


def test_keys_shorter_than_32_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TokenService(b"short")
    with pytest.raises(ValueError, match="32 bytes"):
        TokenService(KEY, previous_key=b"short")


def test_from_settings() -> None:
    settings = load_settings(
        {"JWT_SECRET": OTHER_KEY.decode(), "JWT_PREVIOUS_SECRET": KEY.decode(), "JWT_TTL_SECONDS": "120"}
    )
    service = TokenService.from_settings(settings)
    assert service.ttl_seconds == 120 and service.kid == key_id(OTHER_KEY)
    assert service.verify(TokenService(KEY, ttl_seconds=120).issue(USER_ID, EMAIL).token).email == EMAIL


def test_from_settings_refuses_to_start_without_a_secret() -> None:
    with pytest.raises(ConfigError) as info:
        TokenService.from_settings(load_settings({}))
    assert info.value.variable == "JWT_SECRET"
    with pytest.raises(ConfigError):
        load_settings({"JWT_SECRET": "too short"})

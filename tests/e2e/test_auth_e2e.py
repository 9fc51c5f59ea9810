"""The auth routes and the TOKEN authorizer of the deployed template, driven over HTTP like a user.

Fixtures from tests/e2e/conftest.py: `api_url` (the stage URL) and `jwt_secret` (the deployed
JWT_SECRET, to craft an expired token). Every test sends its own X-Forwarded-For address: the local
emulator takes the source IP from it, so per-IP throttling in one test does not leak into another
(API Gateway on AWS ignores it and uses the real peer address).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from tests.support.api import PASSWORD, Api, new_email
from vid2mp3.auth.tokens import TokenService

pytestmark = pytest.mark.e2e



@pytest.fixture
def api(api_url: str) -> Api:
    return Api(api_url)


@pytest.fixture
def account(api: Api) -> dict[str, str]:
    email = new_email()
    reply = api.register(email)
    assert reply.status == 201, reply.raw
    return {"id": reply.body["id"], "email": email}


@pytest.fixture
def token(api: Api, account: dict[str, str]) -> str:
    reply = api.login(account["email"])
    assert reply.status == 200, reply.raw
    return str(reply.body["access_token"])


def test_register(api: Api) -> None:
    email = new_email()
    reply = api.register(f"  {email.upper()} ")
    assert reply.status == 201, reply.raw
    assert set(reply.body) == {"id", "email"}
    assert reply.body["email"] == email
    assert uuid.UUID(reply.body["id"])
    assert reply.headers.get("Content-Type", "").startswith("application/json")


def test_register_duplicate_in_another_case_is_409(api: Api, account: dict[str, str]) -> None:
    reply = api.register(account["email"].upper(), password="another password entirely")
    assert reply.status == 409, reply.raw
    assert reply.error_code() == "email_taken"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, ["email", "password"]),
        ({"email": "someone@example.com"}, ["password"]),
        ({"email": 12, "password": True}, ["email", "password"]),
        ({"email": "not-an-email", "password": PASSWORD}, ["email"]),
        ({"email": "someone@example.com", "password": "too short"}, ["password"]),
        ({"email": "someone@example.com", "password": "x" * 1025}, ["password"]),
    ],
)
def test_register_invalid_is_400_naming_the_fields(api: Api, body: dict[str, Any], fields: list[str]) -> None:
    reply = api.request("POST", "/auth/register", body)
    assert reply.status == 400, reply.raw
    assert reply.error_code() == "invalid_input"
    message = reply.body["error"]["message"]
    for name in fields:
        assert f"{name}:" in message
    assert str(body.get("password", "\0")) not in message


@pytest.mark.parametrize("path", ["/auth/register", "/auth/login"])
@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2, 3]", b'"just a string"', b"null"])
def test_body_that_is_not_a_json_object_is_400(api: Api, path: str, raw: bytes) -> None:
    reply = api.request("POST", path, raw=raw, headers={"Content-Type": "application/json"})
    assert reply.status == 400, reply.raw
    assert reply.error_code() == "invalid_json"


def test_a_non_json_content_type_is_415(api: Api) -> None:
    reply = api.request(
        "POST", "/auth/register", raw=b"email=a@example.com", headers={"Content-Type": "text/plain"}
    )
    assert reply.status == 415, reply.raw
    assert reply.error_code() == "unsupported_media_type"


def test_login(api: Api, account: dict[str, str]) -> None:
    reply = api.login(account["email"].upper())
    assert reply.status == 200, reply.raw
    assert set(reply.body) == {"access_token", "token_type", "expires_in"}
    assert reply.body["token_type"] == "Bearer"
    assert isinstance(reply.body["expires_in"], int) and reply.body["expires_in"] > 0
    assert reply.body["access_token"].count(".") == 2
    assert reply.headers.get("Cache-Control") == "no-store"


def test_wrong_password_and_unknown_email_get_the_same_401(api: Api, account: dict[str, str]) -> None:
    wrong = api.login(account["email"], password="not the password at all")
    unknown = api.login(new_email())
    assert wrong.status == unknown.status == 401, (wrong.raw, unknown.raw)
    assert wrong.body == unknown.body
    assert wrong.error_code() == "invalid_credentials"


def test_me_with_a_token(api: Api, account: dict[str, str], token: str) -> None:
    reply = api.me(token)
    assert reply.status == 200, reply.raw
    assert {k: reply.body[k] for k in ("id", "email")} == {"id": account["id"], "email": account["email"]}
    assert reply.body["webhook_secret"].startswith("whsec_") and set(reply.body["usage"]) >= {
        "storage_bytes", "active_jobs", "uploads_per_hour"}
    again = api.me(token)  # answered from the gateway's authorizer cache, same result
    assert again.status == 200 and again.body == reply.body


def test_me_without_a_token_is_401(api: Api) -> None:
    assert api.me().status == 401


@pytest.mark.parametrize("value", ["Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer a.b.c"])
def test_me_with_a_malformed_header_is_401(api: Api, value: str) -> None:
    assert api.me(headers={"Authorization": value}).status == 401


def test_me_with_a_tampered_token_is_401(api: Api, token: str) -> None:
    header, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert api.me(f"{header}.{payload}.{flipped}").status == 401
    other = TokenService(b"some-other-key-of-at-least-32-bytes").issue(str(uuid.uuid4()), "x@example.com")
    assert api.me(other.token).status == 401


def test_me_with_an_alg_none_token_is_401(api: Api, token: str) -> None:
    import base64

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert api.me(f"{b64({**header, 'alg': 'none'})}.{b64(payload)}.").status == 401


def test_me_with_an_expired_token_is_401(api: Api, account: dict[str, str], jwt_secret: str) -> None:
    key = jwt_secret.encode()
    # Control: a token crafted the same way but current is accepted, so the refusal below is the expiry.
    current = TokenService(key, ttl_seconds=60).issue(account["id"], account["email"]).token
    assert api.me(current).status == 200
    expired = (
        TokenService(key, ttl_seconds=60, clock=lambda: time.time() - 3600)
        .issue(account["id"], account["email"])
        .token
    )
    assert api.me(expired).status == 401


def test_login_is_throttled_with_retry_after(api: Api, account: dict[str, str]) -> None:
    for _ in range(5):
        assert api.login(account["email"], password="not the password at all").status == 401
    reply = api.login(account["email"])  # the right password, but the account is locked out
    assert reply.status == 429, reply.raw
    assert reply.error_code() == "too_many_requests"
    retry_after = int(reply.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    # The lock is on the account: from another address it is locked out just the same.
    assert Api(api.base_url).login(account["email"]).status == 429

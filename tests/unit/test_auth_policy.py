"""The TOKEN authorizer: its IAM policy, and the handler in functions/auth/authorizer.py (called directly)."""

from __future__ import annotations

import base64
import importlib.util
import json
import time
from fnmatch import fnmatchcase
from pathlib import Path
from types import ModuleType

import pytest

from vid2mp3.auth import policy
from vid2mp3.auth.policy import allow_policy, api_wide_resource
from vid2mp3.auth.tokens import TokenService, key_id
from vid2mp3.errors import ConfigError, Unauthorized

KEY = b"a-test-signing-key-of-32-bytes!!"
USER_ID = "5b0d7e5c-1f8e-4a43-9a2e-7d8c1c1f0b2a"
EMAIL = "alice@example.com"
ARN_PREFIX = "arn:aws:execute-api:us-east-1:000000000000"
METHOD_ARN = f"{ARN_PREFIX}:abcd1234/v1/GET/auth/me"
AUTHORIZER_PY = Path(__file__).resolve().parents[2] / "functions" / "auth" / "authorizer.py"


@pytest.fixture(scope="module")
def authorizer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("auth_authorizer_under_test", AUTHORIZER_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tokens(authorizer: ModuleType, monkeypatch: pytest.MonkeyPatch) -> TokenService:
    service_ = TokenService(KEY, ttl_seconds=600)
    monkeypatch.setattr(authorizer, "tokens", lambda: service_)
    return service_


def event(token: str | None, method_arn: str = METHOD_ARN) -> dict[str, object]:
    e: dict[str, object] = {"type": "TOKEN", "methodArn": method_arn}
    if token is not None:
        e["authorizationToken"] = token
    return e


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "method_arn",
    [
        METHOD_ARN,
        f"{ARN_PREFIX}:abcd1234/v1/POST/videos",
        f"{ARN_PREFIX}:abcd1234/v1/GET/",
        f"{ARN_PREFIX}:abcd1234/v1/",
    ],
)
def test_resource_covers_the_whole_stage(method_arn: str) -> None:
    assert api_wide_resource(method_arn) == f"{ARN_PREFIX}:abcd1234/v1/*/*"


@pytest.mark.parametrize(
    "method_arn", ["", "arn:aws:s3:::bucket/key", "arn:aws:execute-api:us-east-1:0:abcd1234", "not an arn"]
)
def test_malformed_method_arns(method_arn: str) -> None:
    with pytest.raises(ValueError):
        api_wide_resource(method_arn)


def test_allow_policy_shape() -> None:
    assert allow_policy("u1", "arn:x", {"user_id": "u1"}) == {
        "principalId": "u1",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "arn:x"}],
        },
        "context": {"user_id": "u1"},
    }


def test_valid_token_is_allowed_on_every_route(authorizer: ModuleType, tokens: TokenService) -> None:
    token = tokens.issue(USER_ID, EMAIL).token
    result = authorizer.handler(event(f"Bearer {token}"), None)
    assert result["principalId"] == USER_ID
    assert result["context"] == {"user_id": USER_ID, "email": EMAIL, "token_version": "0"}
    assert all(isinstance(v, str) for v in result["context"].values())
    (statement,) = result["policyDocument"]["Statement"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "execute-api:Invoke"
    resource = statement["Resource"]
    # A cached result must cover the other routes of this stage, and nothing else.
    for arn in [
        METHOD_ARN,
        f"{ARN_PREFIX}:abcd1234/v1/DELETE/videos/42",
        f"{ARN_PREFIX}:abcd1234/v1/GET/videos",
    ]:
        assert fnmatchcase(arn, resource)
    for arn in [f"{ARN_PREFIX}:abcd1234/v2/GET/auth/me", f"{ARN_PREFIX}:other123/v1/GET/auth/me"]:
        assert not fnmatchcase(arn, resource)


@pytest.mark.parametrize("template", ["bearer {}", "BEARER {}", "  Bearer   {}  "])
def test_scheme_is_case_insensitive(authorizer: ModuleType, tokens: TokenService, template: str) -> None:
    token = tokens.issue(USER_ID, EMAIL).token
    assert authorizer.handler(event(template.format(token)), None)["principalId"] == USER_ID


def _refused(authorizer: ModuleType, e: dict[str, object]) -> None:
    with pytest.raises(Exception) as info:
        authorizer.handler(e, None)
    assert type(info.value) is Exception
    assert str(info.value) == "Unauthorized"


def test_missing_and_malformed_headers(authorizer: ModuleType, tokens: TokenService) -> None:
    token = tokens.issue(USER_ID, EMAIL).token
    for value in [
        None,
        "",
        "Bearer",
        "Bearer ",
        token,
        f"Basic {token}",
        f"Bearer {token} extra",
        "Bearer a.b.c",
    ]:
        _refused(authorizer, event(value))


def test_tampered_token(authorizer: ModuleType, tokens: TokenService) -> None:
    header, payload, signature = tokens.issue(USER_ID, EMAIL).token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    _refused(authorizer, event(f"Bearer {header}.{b64(json.dumps(claims).encode())}.{signature}"))
    _refused(authorizer, event(f"Bearer {header}.{payload}.{signature[::-1]}"))


def test_wrong_key(authorizer: ModuleType, tokens: TokenService) -> None:
    other = TokenService(b"another-key-that-is-32-bytes-lng")
    _refused(authorizer, event(f"Bearer {other.issue(USER_ID, EMAIL).token}"))


def test_alg_none(authorizer: ModuleType, tokens: TokenService) -> None:
    now = int(time.time())
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": key_id(KEY)}).encode())
    payload = b64(
        json.dumps(
            {
                "sub": USER_ID,
                "email": EMAIL,
                "iat": now,
                "exp": now + 60,
                "iss": "vid2mp3",
                "aud": "vid2mp3-api",
            }
        ).encode()
    )
    _refused(authorizer, event(f"Bearer {header}.{payload}."))


def test_expired(authorizer: ModuleType, tokens: TokenService) -> None:
    expired = TokenService(KEY, ttl_seconds=600, clock=lambda: time.time() - 3600).issue(USER_ID, EMAIL).token
    _refused(authorizer, event(f"Bearer {expired}"))


def test_bad_method_arn(authorizer: ModuleType, tokens: TokenService) -> None:
    token = tokens.issue(USER_ID, EMAIL).token
    _refused(authorizer, event(f"Bearer {token}", method_arn="garbage"))
    _refused(authorizer, {"type": "TOKEN", "authorizationToken": f"Bearer {token}"})


def test_the_token_is_never_logged(
    authorizer: ModuleType, tokens: TokenService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    token = tokens.issue(USER_ID, EMAIL).token
    authorizer.handler(event(f"Bearer {token}"), None)
    _refused(authorizer, event(f"Bearer {token}x"))
    _refused(authorizer, event("Bearer not-a-jwt-secret-ish"))
    logged = caplog.text + repr([record.__dict__ for record in caplog.records])
    assert "token refused" in logged
    for secret in [token, token.split(".")[2], "not-a-jwt-secret-ish"]:
        assert secret not in logged


def test_without_a_secret_it_fails_loudly_not_with_401(
    authorizer: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A misconfigured authorizer must be a 500 (an error other than "Unauthorized"), not a silent 401.
    monkeypatch.delenv("JWT_SECRET", raising=False)
    monkeypatch.setattr(authorizer, "_tokens", None)
    with pytest.raises(ConfigError):
        authorizer.handler(event("Bearer x.y.z"), None)


def test_authorize_function() -> None:
    tokens = TokenService(KEY)
    result = policy.authorize(event(f"Bearer {tokens.issue(USER_ID, EMAIL, 3).token}"), tokens=tokens)
    assert result["context"] == {policy.CONTEXT_USER_ID: USER_ID, policy.CONTEXT_EMAIL: EMAIL,
                                 policy.CONTEXT_TOKEN_VERSION: "3"}
    with pytest.raises(Unauthorized):
        policy.authorize(event(None), tokens=tokens)

"""The auth function's HTTP handlers (functions/auth/app.py) through chalice.test.Client, with fakes."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from chalice.test import Client

from tests.support.worlds import World
from vid2mp3.auth.passwords import Argon2PasswordHasher
from vid2mp3.auth.throttle import InMemoryThrottleStore
from vid2mp3.auth.users import InMemoryUserRepository
from vid2mp3.bootstrap import AuthDeps, bootstrap_auth
from vid2mp3.errors import DependencyUnavailable
from vid2mp3.settings import load_settings

APP_PY = Path(__file__).resolve().parents[2] / "functions" / "auth" / "app.py"
JSON = {"Content-Type": "application/json"}
PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def auth_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("auth_app_under_test", APP_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def deps(auth_app: ModuleType, monkeypatch: pytest.MonkeyPatch, clock: Clock) -> AuthDeps:
    d = bootstrap_auth(
        load_settings({"JWT_SECRET": "a-test-signing-key-of-32-bytes!!"}),
        users=InMemoryUserRepository(),
        throttle=InMemoryThrottleStore(),
        hasher=Argon2PasswordHasher(memory_cost_kib=8, time_cost=1),
        clock=clock,
    )
    monkeypatch.setattr(auth_app, "deps", lambda: d)
    return d


@pytest.fixture
def client(auth_app: ModuleType, deps: AuthDeps) -> Client:
    with Client(auth_app.app) as c:
        yield c


def post(client: Client, path: str, body: Any, headers: dict[str, str] | None = None):
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.http.post(path, headers=JSON if headers is None else headers, body=raw)


def error(response) -> tuple[str, str]:
    body = json.loads(response.body)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert response.headers["Content-Type"] == "application/json"
    return body["error"]["code"], body["error"]["message"]


def register(client: Client, email: str = "Alice@Example.com", password: str = PASSWORD):
    return post(client, "/auth/register", {"email": email, "password": password})


def login(client: Client, email: str = "alice@example.com", password: str = PASSWORD):
    return post(client, "/auth/login", {"email": email, "password": password})


def test_register(client: Client, deps: AuthDeps) -> None:
    response = register(client)
    assert response.status_code == 201
    body = json.loads(response.body)
    assert set(body) == {"id", "email"}
    assert body["email"] == "alice@example.com"
    user = deps.users.get_by_email("alice@example.com")
    assert user is not None and str(user.id) == body["id"]


def test_register_duplicate_in_another_case(client: Client) -> None:
    register(client)
    response = register(client, email="ALICE@example.com")
    assert response.status_code == 409
    assert error(response)[0] == "email_taken"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "email: is required; password: is required."),
        ({"email": "alice@example.com"}, "password: is required."),
        ({"email": 42, "password": ["x"]}, "email: must be a string; password: must be a string."),
        (
            {"email": "alice@example.com", "password": "short"},
            "password: must be at least 10 characters long.",
        ),
    ],
)
def test_register_invalid_fields(client: Client, body: dict[str, Any], message: str) -> None:
    response = post(client, "/auth/register", body)
    assert response.status_code == 400
    assert error(response) == ("invalid_input", message)


def test_register_bad_email_names_the_field(client: Client) -> None:
    response = register(client, email="not-an-email")
    assert response.status_code == 400
    code, message = error(response)
    assert code == "invalid_input" and message.startswith("email: is not a valid email address")


@pytest.mark.parametrize("path", ["/auth/register", "/auth/login"])
@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]", b"null", b'"text"'])
def test_bodies_that_are_not_a_json_object(client: Client, path: str, raw: bytes) -> None:
    response = post(client, path, raw)
    assert response.status_code == 400
    assert error(response)[0] == "invalid_json"


def test_json_with_a_charset_is_accepted(client: Client) -> None:
    body = {"email": "alice@example.com", "password": PASSWORD}
    response = post(
        client, "/auth/register", body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert response.status_code == 201


def test_other_content_types_are_415(client: Client) -> None:
    response = post(client, "/auth/register", "email=a@example.com", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert error(response)[0] == "unsupported_media_type"


def test_login(client: Client, deps: AuthDeps) -> None:
    user_id = json.loads(register(client).body)["id"]
    response = login(client, email="  ALICE@example.com ")
    assert response.status_code == 200
    body = json.loads(response.body)
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert response.headers["Cache-Control"] == "no-store"
    claims = deps.tokens.verify(body["access_token"])
    assert (claims.user_id, claims.email) == (user_id, "alice@example.com")


def test_wrong_password_and_unknown_email_get_the_same_401(client: Client) -> None:
    register(client)
    wrong = login(client, password="wrong password")
    unknown = login(client, email="nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.body == unknown.body
    assert error(wrong)[0] == "invalid_credentials"


def test_login_is_throttled_with_retry_after(client: Client, clock: Clock) -> None:
    register(client)
    for _ in range(5):
        assert login(client, password="wrong password").status_code == 401
    response = login(client)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "60"
    assert error(response)[0] == "too_many_requests"
    clock.now += 60
    assert login(client).status_code == 200


def test_throttling_uses_the_source_ip(auth_app: ModuleType, deps: AuthDeps) -> None:
    # Chalice's local gateway reports 127.0.0.1 as the source address of every request.
    with Client(auth_app.app) as c:
        for n in range(20):
            assert login(c, email=f"user{n}@example.com").status_code == 401
        assert login(c, email="someone.new@example.com").status_code == 429


def test_a_backing_service_outage_is_503(
    client: Client, deps: AuthDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*_: object) -> None:
        raise DependencyUnavailable("The database is unavailable.")

    monkeypatch.setattr(deps.users, "get_by_email", down)
    response = login(client)
    assert response.status_code == 503
    assert error(response)[0] == "dependency_unavailable"


def proxy_event(path: str, method: str = "GET", authorizer: dict[str, Any] | None = None) -> dict[str, Any]:
    """A REST API proxy event as API Gateway sends it after our TOKEN authorizer allowed the call."""
    request_context: dict[str, Any] = {
        "resourcePath": path,
        "httpMethod": method,
        "path": f"/v1{path}",
        "stage": "v1",
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "identity": {"sourceIp": "198.51.100.7"},
    }
    if authorizer is not None:
        request_context["authorizer"] = authorizer
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": {"Accept": "application/json"},
        "multiValueHeaders": {"Accept": ["application/json"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": request_context,
        "body": None,
        "isBase64Encoded": False,
    }


def test_me_reads_the_account_named_by_the_authorizer_context(
        auth_app: ModuleType, deps: AuthDeps, monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(deps.settings)
    monkeypatch.setattr(auth_app, "account_deps", lambda: world.accounts(deps))
    user = deps.users.add("alice@example.com", "x")
    context = {"principalId": str(user.id), "user_id": str(user.id), "email": "alice@example.com",
               "token_version": "0", "integrationLatency": 12}
    response = auth_app.handler(proxy_event("/auth/me", authorizer=context), None)
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert (body["id"], body["email"]) == (str(user.id), "alice@example.com")
    assert body["webhook_secret"].startswith("whsec_") and len(body["webhook_secret"]) == 70
    assert body["usage"]["active_jobs"] == {"used": 0, "limit": 10}
    assert body["usage"]["storage_bytes"]["limit"] == 10 * 1024**3
    assert response["headers"]["Cache-Control"] == "no-store"
    assert response["headers"]["X-Content-Type-Options"] == "nosniff"
    # A token of an older version (the password changed since) is refused, as is one of a deleted account.
    stale = auth_app.handler(proxy_event("/auth/me", authorizer={**context, "token_version": "1"}), None)
    assert stale["statusCode"] == 401 and json.loads(stale["body"])["error"]["code"] == "token_revoked"
    deps.users.delete(user.id)
    gone = auth_app.handler(proxy_event("/auth/me", authorizer=context), None)
    assert gone["statusCode"] == 401 and json.loads(gone["body"])["error"]["code"] == "account_deleted"


def test_me_without_an_authorizer_context_is_401(
    auth_app: ModuleType, deps: AuthDeps, client: Client
) -> None:
    response = auth_app.app(proxy_event("/auth/me"), None)
    assert response["statusCode"] == 401
    assert json.loads(response["body"])["error"]["code"] == "unauthorized"
    assert client.http.get("/auth/me").status_code == 401


def test_passwords_hashes_and_tokens_never_reach_the_logs(
    client: Client, deps: AuthDeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    register(client, password="first secret password")
    register(client, password="second secret password")  # 409
    login(client, password="third secret password")  # 401
    token = json.loads(login(client, password="first secret password").body)["access_token"]
    user = deps.users.get_by_email("alice@example.com")
    assert user is not None
    logged = caplog.text + repr([record.__dict__ for record in caplog.records])
    assert "user registered" in logged and "logged in" in logged
    for secret in [
        "first secret",
        "second secret",
        "third secret",
        user.password_hash,
        token,
        token.split(".")[2],
    ]:
        assert secret not in logged

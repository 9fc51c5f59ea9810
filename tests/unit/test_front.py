"""The Kubernetes HTTP front (infra/front.py), in-process against the real handlers of the template's
functions (auth, authorizer, upload) over in-memory fakes: routing, the TOKEN authorizer flow and its
cache, binary bodies, gateway responses and status codes, as API Gateway does them."""

from __future__ import annotations

import base64
import dataclasses
import importlib.util
import io
import json
import threading
import urllib.error
import urllib.request
import uuid
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from infra import apigw
from infra.front import Front, Invocation, k8s_name, make_handler
from infra.template_model import TEMPLATE, functions, load_template
from tests.support import worlds
from vid2mp3.auth.passwords import Argon2PasswordHasher
from vid2mp3.auth.throttle import InMemoryThrottleStore
from vid2mp3.auth.tokens import TokenService
from vid2mp3.auth.users import InMemoryUserRepository
from vid2mp3.bootstrap import bootstrap, bootstrap_auth
from vid2mp3.jobs import Mp3Info
from vid2mp3.media.probe import AudioStream, MediaInfo
from vid2mp3.objectstore import MP3S_BUCKET
from vid2mp3.settings import load_settings

SECRET = "a-test-signing-key-of-32-bytes!!"
PASSWORD = "correct horse battery"


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"front_test_{path.parent.name}_{path.stem}_{uuid.uuid4().hex}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Db:
    def ping(self) -> None:
        """Up: the in-memory fakes stand for the rest."""


def _probe(path: Path, track: object = None, present: object = None) -> MediaInfo:
    return MediaInfo("mov,mp4,m4a,3gp,3g2,mj2", 3.0, (AudioStream(1, "aac", 2, 44100, 3.0),), True)


class World:
    """Every function of the template with its real handler, wired to fakes; counts invocations."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        template = load_template()
        self.api = apigw.rest_api(template, {})
        self.calls: list[str] = []
        self.handlers: dict[str, Any] = {}
        modules: dict[Path, ModuleType] = {}
        for logical_id, resource in functions(template).items():
            props = resource["Properties"]
            module_name, _, attr = props["Handler"].rpartition(".")
            path = (TEMPLATE.parent / props["CodeUri"] / f"{module_name}.py").resolve()
            module = modules.setdefault(path, _load(path))
            self.handlers[logical_id] = getattr(module, attr)
        auth = modules[(TEMPLATE.parent / "../functions/auth/app.py").resolve()]
        authorizer = modules[(TEMPLATE.parent / "../functions/auth/authorizer.py").resolve()]
        upload = modules[(TEMPLATE.parent / "../functions/upload/app.py").resolve()]
        videos = modules[(TEMPLATE.parent / "../functions/upload/videos.py").resolve()]
        settings = load_settings({"JWT_SECRET": SECRET, "PUBLIC_BASE_URL": "http://api.test"})
        auth_deps = bootstrap_auth(settings, users=InMemoryUserRepository(), throttle=InMemoryThrottleStore(),
                                   hasher=Argon2PasswordHasher(memory_cost_kib=8, time_cost=1))
        # The account's, the jobs' and the uploads' fakes share their state (tests/support/worlds.py).
        fakes = worlds.World(settings)
        monkeypatch.setattr(auth, "deps", lambda: auth_deps)
        monkeypatch.setattr(auth, "account_deps", lambda: fakes.accounts(auth_deps))
        monkeypatch.setattr(authorizer, "tokens", lambda: TokenService(SECRET.encode()))
        self.store, self.jobs = fakes.store, fakes.jobs
        shared = bootstrap(settings, db=_Db(), store=self.store, publisher=fakes.publisher)  # type: ignore[arg-type]
        for module in (upload, videos):  # the upload function's and the videos function's
            monkeypatch.setattr(module.wiring, "shared", shared)
            monkeypatch.setattr(module.wiring, "jobs",
                                dataclasses.replace(fakes.jobs_deps, probe=_probe, logger=module.logger))
            monkeypatch.setattr(module.wiring, "uploads", fakes.uploads_deps)
        self.now = 1000.0
        self.front = Front(self.api, self.invoke, clock=lambda: self.now)

    def invoke(self, logical_id: str, event: bytes, deadline: float) -> Invocation:
        """Through JSON both ways, as over the Invoke API; an exception is Lambda's error document."""
        self.calls.append(logical_id)
        try:
            result = self.handlers[logical_id](json.loads(event), None)
        except Exception as exc:
            return Invocation(json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__}).encode(), True)
        return Invocation(json.dumps(result).encode(), False)

    def request(self, method: str, path: str, body: bytes = b"", **headers: str) -> apigw.HttpResponse:
        pairs = [(k.replace("_", "-"), v) for k, v in headers.items()]
        query: list[tuple[str, str]] = []
        if "?" in path:
            path, _, qs = path.partition("?")
            query = [tuple(p.split("=", 1)) for p in qs.split("&")]  # type: ignore[misc]
        return self.front.handle(apigw.HttpRequest(method, path, pairs, query, body))

    def token(self) -> str:
        credentials = json.dumps({"email": "alice@example.com", "password": PASSWORD}).encode()
        self.request("POST", "/auth/register", credentials, Content_Type="application/json")
        login = self.request("POST", "/auth/login", credentials, Content_Type="application/json")
        assert login.status == 200, login.body
        return str(json.loads(login.body)["access_token"])


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    return World(monkeypatch)


def error_code(response: apigw.HttpResponse) -> str:
    return str(json.loads(response.body)["error"]["code"])


def test_register_login_me_through_the_authorizer(world: World) -> None:
    register = world.request("POST", "/auth/register", b'{"email": "bob@example.com", "password": "%s"}'
                             % PASSWORD.encode(), Content_Type="application/json")
    assert register.status == 201 and json.loads(register.body)["email"] == "bob@example.com"
    token = world.token()
    me = world.request("GET", "/auth/me", Authorization=f"Bearer {token}")
    assert me.status == 200
    assert json.loads(me.body)["email"] == "alice@example.com"
    assert world.calls[-2:] == ["AuthorizerFunction", "AuthFunction"]


def test_missing_malformed_and_refused_tokens_are_401_in_our_error_shape(world: World) -> None:
    assert world.request("GET", "/auth/me").status == 401
    basic = world.request("GET", "/videos", Authorization="Basic dXNlcjpwdw==")
    assert basic.status == 401 and error_code(basic) == "unauthorized"
    assert "AuthorizerFunction" not in world.calls  # the ValidationExpression refused both before any call
    forged = world.request("GET", "/videos", Authorization="Bearer not.a.jwt")
    assert forged.status == 401 and error_code(forged) == "unauthorized"
    assert world.calls == ["AuthorizerFunction"]


def test_the_authorizers_answer_is_cached_for_reauthorize_every(world: World) -> None:
    token = world.token()
    world.calls.clear()
    for _ in range(3):
        assert world.request("GET", "/videos", Authorization=f"Bearer {token}").status == 200
    assert world.calls.count("AuthorizerFunction") == 1
    world.now += world.api.authorizer.ttl_s + 1  # type: ignore[union-attr]
    assert world.request("GET", "/auth/me", Authorization=f"Bearer {token}").status == 200
    assert world.calls.count("AuthorizerFunction") == 2


def test_an_explicit_deny_is_403_and_a_broken_authorizer_500(world: World) -> None:
    arn = world.api.method_arn("GET", "/videos")
    deny = {"principalId": "u", "policyDocument": {"Version": "2012-10-17", "Statement": [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"},
        {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": arn.rsplit("/", 1)[0] + "/*"}]}}
    with pytest.raises(apigw.AuthorizerRejected) as refused:
        apigw.authorizer_decision(deny, arn)
    assert refused.value.kind == "ACCESS_DENIED"
    assert world.api.gateway_response("ACCESS_DENIED")[0] == 403
    world.handlers["AuthorizerFunction"] = lambda event, context: deny
    assert world.request("GET", "/videos", Authorization="Bearer a.b.c").status == 403
    world.handlers["AuthorizerFunction"] = lambda event, context: 1 / 0
    broken = world.request("GET", "/videos", Authorization="Bearer d.e.f")
    assert broken.status == 500 and error_code(broken) == "gateway_error"


def test_binary_upload_and_download(world: World) -> None:
    token = world.token()
    boundary = "b0undary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="clip.mp4"\r\n'
            f"Content-Type: video/mp4\r\n\r\n").encode()
    body = head + b"MEDIA\x00\xff\xfe" * 100 + f"\r\n--{boundary}--\r\n".encode()
    created = world.request("POST", "/videos", body, Authorization=f"Bearer {token}",
                            Content_Type=f"multipart/form-data; boundary={boundary}")
    assert created.status == 202, created.body
    job = json.loads(created.body)
    assert job["size"] == 800  # the bytes arrived intact, base64-encoded in the event
    mp3 = bytes(range(256)) * 40
    world.store.put(MP3S_BUCKET, job["id"], io.BytesIO(mp3), filename="clip.mp3", metadata={})
    assert world.jobs.start_conversion(job["id"]) is not None
    assert world.jobs.mark_done(job["id"], Mp3Info(job["id"], len(mp3), 3.0, "192k"))
    whole = world.request("GET", f"/videos/{job['id']}/mp3", Authorization=f"Bearer {token}", Accept="audio/mpeg")
    assert whole.status == 200 and whole.body == mp3
    assert ("Content-Type", "audio/mpeg") in whole.headers
    part = world.request("GET", f"/videos/{job['id']}/mp3", Authorization=f"Bearer {token}", Accept="*/*",
                         Range="bytes=10-19")
    assert part.status == 206 and part.body == mp3[10:20]


def test_gateway_responses_and_status_codes(world: World) -> None:
    unknown = world.request("GET", "/nowhere")
    assert unknown.status == 404 and error_code(unknown) == "not_found"
    assert world.request("PUT", "/health").status == 404  # a known path, an unknown method
    assert world.request("GET", "/health").status == 200
    token = world.token()
    assert world.request("GET", f"/videos/{uuid.uuid4()}", Authorization=f"Bearer {token}").status == 404
    world.handlers["VideosFunction"] = lambda event, context: 1 / 0
    failed = world.request("GET", "/videos", Authorization=f"Bearer {token}")
    assert failed.status == 502 and error_code(failed) == "gateway_error"
    too_big = world.request("POST", "/videos", b"x" * (apigw.MAX_PAYLOAD_BYTES + 1), Authorization=f"Bearer {token}")
    assert too_big.status == 413


def test_query_strings_and_multi_value_headers(world: World) -> None:
    route, params = world.api.resolve("GET", "/videos")  # type: ignore[misc]
    request = apigw.HttpRequest("GET", "/videos", [("X-A", "1"), ("X-A", "2")],
                                [("limit", "5"), ("t", "a"), ("t", "b")])
    event = apigw.proxy_event(world.api, route, params, request)
    assert event["headers"]["X-A"] == "2" and event["multiValueHeaders"]["X-A"] == ["1", "2"]
    assert event["queryStringParameters"] == {"limit": "5", "t": "b"}
    assert event["multiValueQueryStringParameters"]["t"] == ["a", "b"]
    answer = {"statusCode": 200, "headers": {"A": "x"}, "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]}, "body": ""}
    response = apigw.http_response(world.api, answer, request)
    assert response.headers == [("A", "x"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
    token = world.token()
    listed = world.request("GET", "/videos?limit=1", Authorization=f"Bearer {token}")
    assert listed.status == 200 and json.loads(listed.body)["items"] == []


def test_routing_prefers_static_segments() -> None:
    api = apigw.RestApi("v1", [apigw.Route("F", "A", "GET", "/videos/{id}", False),
                               apigw.Route("F", "B", "GET", "/videos/latest", False),
                               apigw.Route("F", "C", "ANY", "/{proxy+}", False)], [], None, {})
    assert api.resolve("GET", "/videos/latest")[0].event == "B"  # type: ignore[index]
    assert api.resolve("GET", "/videos/42") == (api.routes[0], {"id": "42"})
    assert api.resolve("DELETE", "/a/b")[1] == {"proxy": "a/b"}  # type: ignore[index]


def test_over_http(world: World) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(world.front))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with urllib.request.urlopen(f"{url}/_front/health", timeout=10) as resp:
            assert resp.status == 200
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{url}/auth/me", timeout=10)
        assert missing.value.code == 401
        missing.value.close()
        token = world.token()
        request = urllib.request.Request(f"{url}/auth/me", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert json.loads(resp.read())["email"] == "alice@example.com"
    finally:
        server.shutdown()
        server.server_close()


def test_kubernetes_names() -> None:
    assert [k8s_name(n) for n in ("AuthFunction", "AuthorizerFunction", "S3ExportBucket")] == [
        "auth-function", "authorizer-function", "s3-export-bucket"]


def test_request_bodies_are_base64_only_for_binary_media_types() -> None:
    assert apigw.matches_binary("multipart/form-data; boundary=x", ["multipart/form-data"])
    assert apigw.matches_binary("image/png", ["image/*"]) and not apigw.matches_binary("text/plain", ["image/*"])
    assert not apigw.matches_binary(None, ["*/*"])
    api = apigw.RestApi("v1", [apigw.Route("F", "A", "POST", "/x", False)], ["application/octet-stream"], None, {})
    route = api.routes[0]
    def post(content_type: str, body: bytes) -> dict[str, Any]:
        return apigw.proxy_event(api, route, {}, apigw.HttpRequest("POST", "/x", [("Content-Type", content_type)], (),
                                                                   body))

    text, raw = post("text/plain", b"hi"), post("application/octet-stream", b"\xff")
    assert (text["body"], text["isBase64Encoded"]) == ("hi", False)
    assert (base64.b64decode(raw["body"]), raw["isBase64Encoded"]) == (b"\xff", True)

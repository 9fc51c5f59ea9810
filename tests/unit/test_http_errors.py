import json

from chalice.test import Client

from vid2mp3 import errors
from vid2mp3.api import create_app, json_response, route
from vid2mp3.http import error_parts
from vid2mp3.log import get_logger


def make_app():
    app = create_app("t", get_logger("t"))

    @route(app, "/boom/{kind}", methods=["GET"])
    def boom(kind):
        if kind == "taken":
            raise errors.Conflict("That email is taken.", code="email_taken")
        if kind == "throttled":
            raise errors.TooManyRequests(retry_after=30)
        if kind == "config":
            raise errors.ConfigError("DATABASE_URL", "is not set")
        if kind == "bug":
            raise RuntimeError("/srv/secret/path password=hunter2")
        return json_response({"ok": True})

    @route(app, "/echo", methods=["POST"])
    def echo():
        return json_response(app.current_request.json_body)

    return app


def test_app_errors_map_to_status_and_the_one_error_shape():
    with Client(make_app()) as client:
        r = client.http.get("/boom/taken")
        assert r.status_code == 409
        assert json.loads(r.body) == {"error": {"code": "email_taken", "message": "That email is taken."}}
        r = client.http.get("/boom/throttled")
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "30"


def test_unexpected_errors_leak_nothing():
    with Client(make_app()) as client:
        for kind in ("bug", "config"):
            r = client.http.get(f"/boom/{kind}")
            assert r.status_code == 500
            body = json.loads(r.body)
            assert body["error"]["code"] == "internal_error"
            assert "hunter2" not in r.body.decode() and "/srv" not in r.body.decode()
            assert "DATABASE_URL" not in r.body.decode()


def test_chalice_own_errors_get_the_error_shape():
    with Client(make_app()) as client:
        r = client.http.post("/echo", headers={"Content-Type": "application/json"}, body=b"{not json")
        assert r.status_code == 400
        assert json.loads(r.body)["error"]["code"] == "invalid_json"
        r = client.http.post("/echo", headers={"Content-Type": "text/plain"}, body=b"x")
        assert r.status_code == 415
        assert json.loads(r.body)["error"]["code"] == "unsupported_media_type"
        r = client.http.put("/echo", headers={"Content-Type": "application/json"}, body=b"{}")
        assert r.status_code == 405
        assert json.loads(r.body)["error"]["code"] == "method_not_allowed"


def test_every_app_error_has_a_status():
    for cls in errors.AppError.__subclasses__():
        exc = cls(10) if cls in (errors.TooManyRequests, errors.RangeNotSatisfiable) else cls()
        status, _, body = error_parts(exc)
        assert 400 <= status < 600, cls
        assert set(json.loads(body)["error"]) == {"code", "message"}

"""The platform through the emulated API Gateway: health, unknown routes, error shapes."""

import json
import urllib.error
import urllib.request


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_health_is_ok_with_every_check(api_url):
    status, _, body = get(f"{api_url}/health")
    assert status == 200, body
    data = json.loads(body)
    assert data["status"] == "ok"
    assert {name: c["status"] for name, c in data["checks"].items()} == {
        "postgres": "ok", "mongodb": "ok", "rabbitmq": "ok"}


def test_protected_route_without_token_is_401(api_url):
    # The body is the template's UNAUTHORIZED gateway response on AWS; MiniStack sends its own.
    status, _, _ = get(f"{api_url}/auth/me")
    assert status == 401


def test_unknown_route_is_refused(api_url):
    # AWS answers with the template's MISSING_AUTHENTICATION_TOKEN gateway response (404, our error
    # shape); MiniStack ignores gateway responses and answers 403 {"message": ...} (README, limits).
    status, _, _ = get(f"{api_url}/no/such/route")
    assert status in (403, 404)

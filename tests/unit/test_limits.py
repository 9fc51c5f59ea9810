"""AWS's payload limits, applied by the functions: refused exactly where API Gateway and Lambda would."""

from __future__ import annotations

import base64
import json

from vid2mp3 import limits


def event(body: bytes | None, **headers: str) -> dict:
    return {"httpMethod": "PATCH", "path": "/uploads/x", "headers": headers, "requestContext": {"stage": "v1"},
            "body": base64.b64encode(body).decode() if body is not None else None, "isBase64Encoded": body is not None}


def test_envelope_size_is_the_json_size():
    for e in (event(b"x" * 1000), event(None), {"statusCode": 200, "body": 'a "quoted" \\ text é'}):
        assert abs(limits.envelope_size(e) - len(json.dumps(e))) <= 16


def test_4_mib_parts_pass_and_larger_bodies_are_refused_as_aws_would():
    assert limits.check_request(event(bytes(limits.MAX_BODY_BYTES))) is None
    refused = limits.check_request(event(bytes(4_800_000)))  # 6.4 MB once base64-encoded
    assert refused is not None and refused["statusCode"] == 413
    assert json.loads(refused["body"])["error"]["code"] == "request_too_large"
    # API Gateway's own limit, from the declared length, before anything else.
    big = limits.check_request(event(b"x", **{"Content-Length": str(11 * 1024 * 1024)}))
    assert big is not None and "10 MiB" in json.loads(big["body"])["error"]["message"]


def test_a_response_over_6_mb_becomes_the_502_api_gateway_gives():
    small = {"statusCode": 200, "body": base64.b64encode(bytes(limits.MAX_BODY_BYTES)).decode(),
             "isBase64Encoded": True}
    assert limits.check_response(small) is small
    large = {"statusCode": 200, "body": base64.b64encode(bytes(5 * 1024 * 1024)).decode(), "isBase64Encoded": True}
    refused = limits.check_response(large)
    assert refused["statusCode"] == 502 and json.loads(refused["body"])["error"]["code"] == "response_too_large"


def test_the_guard_never_runs_the_function_on_a_refused_request():
    calls = []
    seen = []
    guarded = limits.enforce_aws_limits(lambda e, c: calls.append(e) or {"statusCode": 204, "body": ""},
                                        lambda what, size: seen.append((what, size)))
    assert guarded(event(bytes(4_800_000)), None)["statusCode"] == 413
    assert calls == [] and seen[0][0] == "request" and seen[0][1] > limits.LAMBDA_MAX_REQUEST_BYTES
    assert guarded(event(b"ok"), None)["statusCode"] == 204 and len(calls) == 1

"""Realistic sample events for every function of the template, derived from the template itself.

One sample per case, so a route, a queue or a function added to the template has its sample with no
change here:

- each `Type: Api` event: the REST proxy event API Gateway sends for that route (infra.apigw), with the
  authorizer's context of a sample user on routes behind the authorizer, and a body where the route's
  contract is known (`_BODIES`); path parameters get sample values;
- the TOKEN authorizer: its input for a valid bearer token of the sample user (signed with the stack's
  JwtSecret, so the authorizer allows it);
- each `Type: MQ` event: the `aws:rmq` event the event source mapping sends (infra.bridge's builder, the
  one the local bridge uses), one message per queue, with the body the project publishes there;
- each `Type: Schedule` event: EventBridge's scheduled event;
- a function with no event: `{}` (what `sam local invoke --no-event` sends).

Any other event type raises UnsupportedEvent, so a template that grows one fails the tests until it
has a sample.
"""

from __future__ import annotations

import json
import logging
import struct
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra import apigw
from infra.bridge import Message, build_rmq_event
from infra.template_model import MQEventSource, functions, mq_event_sources, parameter_defaults

SAMPLE_EMAIL = "sample.user@example.com"
SAMPLE_PASSWORD = "correct horse battery staple"
SAMPLE_USER_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "https://vid2mp3.invalid/sample-user"))
SAMPLE_JOB_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "https://vid2mp3.invalid/sample-job"))
SAMPLE_VIDEO_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "https://vid2mp3.invalid/sample-video"))
TOKEN_EVENT = "Token"  # the name of the authorizer's sample (it has no template event of its own)
NO_EVENT = "NoEvent"
_BOUNDARY = "vid2mp3-sample-boundary"


class UnsupportedEvent(ValueError):
    """The template has an event type this module cannot make a sample of."""


@dataclass(frozen=True)
class Sample:
    function: str
    name: str  # the template event's logical id, TOKEN_EVENT or NO_EVENT
    event: dict[str, Any]


def sample_wav(seconds: float = 1.0, rate: int = 8000) -> bytes:
    """A short mono 16-bit PCM WAV (a 440 Hz square wave), made without ffmpeg."""
    frames = int(seconds * rate)
    period = rate // 440
    pcm = b"".join(struct.pack("<h", 8000 if (i % period) < period // 2 else -8000) for i in range(frames))
    header = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE"
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    return header + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm


def multipart_body(filename: str, content: bytes, content_type: str, fields: Mapping[str, str]) -> bytes:
    parts = [f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 f"Content-Type: {content_type}\r\n\r\n".encode() + content + b"\r\n")
    return b"".join(parts) + f"--{_BOUNDARY}--\r\n".encode()


def _json(body: Mapping[str, Any]) -> tuple[str, bytes]:
    return "application/json", json.dumps(body).encode()


# Bodies of the routes whose contract is known (README, "HTTP API"); other routes get no body.
_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/auth/register"): lambda: _json({"email": SAMPLE_EMAIL, "password": SAMPLE_PASSWORD}),
    ("POST", "/auth/login"): lambda: _json({"email": SAMPLE_EMAIL, "password": SAMPLE_PASSWORD}),
    ("POST", "/videos"): lambda: (
        f"multipart/form-data; boundary={_BOUNDARY}",
        multipart_body("sample.wav", sample_wav(), "audio/wav", {"bitrate": "128k"}),
    ),
}
_ACCEPT = {("GET", "/videos/{id}/mp3"): "audio/mpeg"}


def sample_token(jwt_secret: str, user_id: str = SAMPLE_USER_ID, email: str = SAMPLE_EMAIL) -> str:
    from vid2mp3.auth.tokens import TokenService

    return TokenService(jwt_secret.encode()).issue(user_id, email).token


def api_sample(api: apigw.RestApi, route: apigw.Route, token: str, *, body: bytes | None = None,
               content_type: str | None = None, path_parameters: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The proxy event of `route` as a client of the sample user would cause it."""
    params = {name: SAMPLE_JOB_ID if name == "id" else f"sample-{name}" for name in route.parameters}
    params.update(path_parameters or {})
    path = route.path
    for name, value in params.items():
        path = path.replace("{" + name + "+}", value).replace("{" + name + "}", value)
    known = _BODIES.get((route.method, route.path))
    if body is None and known is not None:
        content_type, body = known()
    headers = [("Host", f"{api.api_id}.execute-api.{apigw.REGION}.amazonaws.com"),
               ("User-Agent", "vid2mp3-sample/1.0"), ("X-Forwarded-For", "203.0.113.7"),
               ("Accept", _ACCEPT.get((route.method, route.path), "application/json"))]
    if content_type:
        headers.append(("Content-Type", content_type))
    if route.path.startswith("/uploads"):  # what every tus client sends
        headers.append(("Tus-Resumable", "1.0.0"))
    context = None
    if route.authorized:
        headers.append(("Authorization", f"Bearer {token}"))
        context = {"user_id": SAMPLE_USER_ID, "email": SAMPLE_EMAIL, "principalId": SAMPLE_USER_ID,
                   "integrationLatency": 0}
    request = apigw.HttpRequest(method=route.method if route.method != "ANY" else "GET", path=path,
                                headers=headers, body=body or b"", source_ip="203.0.113.7")
    return apigw.proxy_event(api, route, params, request, authorizer_context=context)


def _queue_body(queue: str) -> dict[str, Any]:
    from vid2mp3.jobs import Job, Mp3Info, completed_event, conversion_message, failed_event
    from vid2mp3.queue import topology

    now = datetime.now(UTC)
    job = Job(id=SAMPLE_JOB_ID, owner_id=SAMPLE_USER_ID, owner_email=SAMPLE_EMAIL, filename="sample.wav",
              content_type="audio/wav", size=16044, sha256="0" * 64, video_id=SAMPLE_VIDEO_ID, bitrate="128k",
              correlation_id=f"sample-{SAMPLE_JOB_ID[:8]}", created_at=now, updated_at=now)
    base = queue.removesuffix(".dlq")
    if base == topology.CONVERSION_COMPLETED_QUEUE:
        return completed_event(job, Mp3Info(object_id=job.id, size=16718, duration_s=1.0, bitrate="128k"))
    if base == topology.CONVERSION_FAILED_QUEUE:
        return failed_event(job, "undecodable", "The file could not be decoded as audio or video.")
    return conversion_message(job)


def rmq_sample(broker_arn: str, queue: str, virtual_host: str, body: Mapping[str, Any]) -> dict[str, Any]:
    import pika

    props = pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                 correlation_id=str(body.get("correlation_id") or "") or None)
    message = Message(json.dumps(body).encode(), props, redelivered=False)
    return build_rmq_event(broker_arn, queue, virtual_host, [message])


def scheduled_sample(function: str, event: str) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": apigw.ACCOUNT_ID,
        "time": now.isoformat().replace("+00:00", "Z"),
        "region": apigw.REGION,
        "resources": [f"arn:aws:events:{apigw.REGION}:{apigw.ACCOUNT_ID}:rule/vid2mp3-{function}{event}"],
        "detail": {},
    }


def samples(template: Mapping[str, Any], parameters: Mapping[str, Any], jwt_secret: str) -> list[Sample]:
    """One sample per (function, event) of the template, plus the authorizer's TOKEN event."""
    params = {**parameter_defaults(dict(template)), **parameters}
    api = apigw.rest_api(template, params)
    token = sample_token(jwt_secret)
    routes = {(r.function, r.event): r for r in api.routes}
    mq: dict[tuple[str, str], list[MQEventSource]] = {}
    for source in mq_event_sources(dict(template), dict(params)):
        mq.setdefault((source.function, source.event), []).append(source)
    broker = str(params.get("MQBrokerArn") or "arn:aws:mq:us-east-1:123456789012:broker:vid2mp3:b-sample")
    out: list[Sample] = []
    for logical_id, resource in functions(dict(template)).items():
        events = (resource.get("Properties") or {}).get("Events") or {}
        for event_id, event in events.items():
            kind = event.get("Type")
            if kind == "Api":
                out.append(Sample(logical_id, event_id, api_sample(api, routes[(logical_id, event_id)], token)))
            elif kind == "MQ":
                sources = mq[(logical_id, event_id)]
                for source in sources:  # one event per queue, as the mapping polls each queue apart
                    name = event_id if len(sources) == 1 else f"{event_id}.{source.queue}"
                    sample = rmq_sample(broker, source.queue, source.virtual_host, _queue_body(source.queue))
                    out.append(Sample(logical_id, name, sample))
            elif kind == "Schedule":
                out.append(Sample(logical_id, event_id, scheduled_sample(logical_id, event_id)))
            else:
                raise UnsupportedEvent(f"{logical_id}.{event_id}: no sample for events of type {kind}")
        if api.authorizer is not None and api.authorizer.function == logical_id:
            request = apigw.HttpRequest(method="GET", path="/auth/me")
            out.append(Sample(logical_id, TOKEN_EVENT, apigw.token_event(api, request, f"Bearer {token}")))
        elif not events:
            out.append(Sample(logical_id, NO_EVENT, {}))
    return out


# --------------------------------------------------------------------------------------------------
# A real video behind the conversion sample


def stage_video(path: Path, environment: Mapping[str, str], ffprobe: str) -> dict[str, Any]:
    """Store `path` as the upload function would (probe, GridFS, a queued job of the sample user) and
    return the conversion message it would publish; nothing is published, so only the invoke that
    receives the event converts it. `environment` is the consuming function's (services, limits)."""
    import mimetypes

    from vid2mp3.auth.identity import Identity
    from vid2mp3.bootstrap import bootstrap, bootstrap_upload
    from vid2mp3.jobs import service
    from vid2mp3.queue.memory import InMemoryPublisher
    from vid2mp3.settings import load_settings

    settings = load_settings(environment)
    publisher = InMemoryPublisher()
    from aws_lambda_powertools import Logger

    # Logs to stderr: stdout carries the event.
    logger = Logger(service="generate-event", use_rfc3339=True, logger_handler=logging.StreamHandler(sys.stderr))
    jobs = bootstrap_upload(bootstrap(settings, publisher=publisher), logger=logger, ffprobe=ffprobe)
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"

    def body() -> Iterator[bytes]:
        yield (f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
               f"Content-Type: {content_type}\r\n\r\n").encode()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk
        yield f"\r\n--{_BOUNDARY}--\r\n".encode()

    service.upload_video(jobs, Identity(SAMPLE_USER_ID, SAMPLE_EMAIL), body(),
                         f"multipart/form-data; boundary={_BOUNDARY}", correlation_id=f"invoke-{uuid.uuid4()}")
    (message,) = publisher.messages
    return message.body


def rmq_with_body(event: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """The `aws:rmq` sample `event` carrying `body` as its (single) message instead."""
    ((key, _messages),) = event["rmqMessagesByQueue"].items()
    queue, _, vhost = key.partition("::")
    return rmq_sample(str(event["eventSourceArn"]), queue, vhost, body)


# --------------------------------------------------------------------------------------------------
# Judging a sample's result (the e2e tests, and the `sam local invoke` job of the CI workflow)


def result_problem(payload: bytes, function_error: bool = False, method: str | None = None) -> str | None:
    """Why the result of a sample event is not a pass, or None: not a function error, and for an API
    event a proxy response below 500 whose errors have the project's shape (a HEAD's have no body)."""
    try:
        result = json.loads(payload)
    except ValueError:
        return f"not JSON: {payload[:300]!r}"
    if function_error or (isinstance(result, dict) and {"errorType", "errorMessage"} <= set(result)):
        return f"function error: {payload[:500]!r}"
    if isinstance(result, dict) and "statusCode" in result:
        if result["statusCode"] >= 500:
            return f"HTTP {result['statusCode']}: {str(result.get('body'))[:300]}"
        if result["statusCode"] >= 400 and not (method == "HEAD" and not result.get("body")):
            try:
                error = json.loads(result["body"])["error"]
                assert set(error) == {"code", "message"}
            except (ValueError, KeyError, TypeError, AssertionError):
                return f"HTTP {result['statusCode']} without the error shape: {str(result.get('body'))[:300]}"
    elif not isinstance(result, dict):
        return f"not an object: {payload[:300]!r}"
    return None


def main(argv: list[str] | None = None) -> int:
    """`python -m infra.sample_events --check RESULT.json ...`: exit 1 naming each result that fails."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m infra.sample_events")
    parser.add_argument("--check", nargs="+", type=Path, required=True, metavar="RESULT")
    failed = 0
    for path in parser.parse_args(argv).check:
        problem = result_problem(path.read_bytes().strip() or b"null")
        print(f"{path}: {problem or 'ok'}")
        failed += problem is not None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

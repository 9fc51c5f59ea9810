"""The public service's rules with fakes: quotas on both upload paths, retention's sweep, the account's
password change and deletion, webhook signatures, SSRF rules (no network: a resolver is handed in), and
the headers every response carries."""

from __future__ import annotations

import ipaddress
import json
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest

from tests.support.apigw import ALICE, multipart_body
from tests.support.worlds import World
from vid2mp3 import accounts
from vid2mp3.auth.identity import Identity, check_session
from vid2mp3.auth.passwords import Argon2PasswordHasher
from vid2mp3.auth.service import admit_registration, change_password
from vid2mp3.auth.throttle import InMemoryThrottleStore
from vid2mp3.auth.users import InMemoryUserRepository
from vid2mp3.bootstrap import bootstrap_auth
from vid2mp3.errors import InvalidInput, PayloadTooLarge, TooManyRequests, Unauthorized
from vid2mp3.http import with_standard_headers
from vid2mp3.jobs import service
from vid2mp3.objectstore import MP3S_BUCKET, VIDEOS_BUCKET
from vid2mp3.quotas.memory import InMemoryRateLimiter
from vid2mp3.quotas.service import report
from vid2mp3.settings import load_settings
from vid2mp3.uploads import service as uploads
from vid2mp3.webhooks.signing import signature_header, verify
from vid2mp3.webhooks.targets import (
    ForbiddenTarget,
    check_callback_url,
    is_public,
    parse_allowed_hosts,
    parse_callback_url,
    resolve_target,
)

PASSWORD = "correct horse battery"


def world(**settings: str) -> World:
    return World(load_settings({"PUBLIC_BASE_URL": "http://api.test/v1", **settings}))


def post_video(w: World, caller: Identity = ALICE, **fields: str) -> Any:
    body, ctype = multipart_body(b"MEDIA" + b"x" * 100, fields=fields or None)
    return service.upload_video(w.jobs_deps, caller, [body], ctype, correlation_id="corr-12345678")


def create_upload(w: World, length: int, caller: Identity = ALICE, metadata: str = "") -> Any:
    return uploads.create(w.uploads_deps, caller, {"upload-length": str(length), "upload-metadata": metadata},
                          correlation_id="corr-12345678")


# --- quotas, on both upload paths ----------------------------------------------------------------


def test_the_hourly_upload_rate_counts_both_paths_and_says_when_it_frees_up():
    w = world(QUOTA_UPLOADS_PER_HOUR="3")
    post_video(w)
    w.clock.now += timedelta(minutes=10)
    create_upload(w, 1000)
    post_video(w)
    for attempt in (lambda: post_video(w), lambda: create_upload(w, 1000)):
        with pytest.raises(TooManyRequests) as refused:
            attempt()
        assert refused.value.code == "upload_rate_exceeded" and refused.value.retry_after == 3600 - 600
    w.clock.now += timedelta(minutes=50, seconds=1)  # the first one left the window
    post_video(w)


def test_active_jobs_count_unfinished_uploads_and_a_refusal_stores_nothing():
    w = world(QUOTA_ACTIVE_JOBS="2")
    post_video(w)
    create_upload(w, 1000)
    stored = dict(w.store.objects)
    with pytest.raises(TooManyRequests) as refused:
        post_video(w)
    assert refused.value.code == "active_jobs_quota_exceeded" and refused.value.retry_after > 0
    assert w.store.objects == stored and len(w.rates.events) == 2  # nothing stored, not counted
    # another user is not affected
    post_video(w, Identity(str(uuid.uuid4()), "bob@example.com"))


def test_storage_counts_an_uploads_whole_length_at_creation():
    w = world(QUOTA_STORAGE_BYTES="10000")
    create_upload(w, 9000)
    with pytest.raises(PayloadTooLarge) as refused:
        create_upload(w, 1001)
    assert refused.value.code == "storage_quota_exceeded" and "10000" in refused.value.message
    create_upload(w, 1000)
    assert report(w.quotas, ALICE.user_id)["storage_bytes"]["used"] == 10000


# --- retention -------------------------------------------------------------------------------------


def test_the_sweep_removes_expired_jobs_files_and_export_copies_and_nothing_else():
    w = world(RETENTION_HOURS="1")
    jobs = [post_video(w) for _ in range(3)]
    for job in jobs:
        w.jobs.start_conversion(job.id)
        w.store.put(MP3S_BUCKET, job.id, __import__("io").BytesIO(b"mp3"), filename="a.mp3", metadata={})
        from vid2mp3.jobs import Mp3Info

        assert w.jobs.mark_done(job.id, Mp3Info(job.id, 3, 1.0, "192k"))
        w.exporter.objects[f"mp3/{job.id}.mp3"] = b"mp3"
        w.clock.now += timedelta(minutes=1)
    # Now: the first finished 3 min ago, the last 1 min ago; each expires an hour after it finished.
    w.clock.now += timedelta(minutes=57)  # the first expires exactly now, the second a minute later
    assert service.get_video(w.jobs_deps, ALICE, jobs[1].id)
    removed = service.expire_jobs(w.jobs_deps, batch=1)
    assert removed == [jobs[0].id]
    assert w.store.stat(MP3S_BUCKET, jobs[0].id) is None and f"mp3/{jobs[0].id}.mp3" not in w.exporter.objects
    assert w.store.stat(VIDEOS_BUCKET, jobs[0].video_id) is None
    w.clock.now += timedelta(seconds=59)  # one second before the second one's expiry
    assert service.expire_jobs(w.jobs_deps) == []
    assert w.store.stat(MP3S_BUCKET, jobs[1].id) is not None
    w.clock.now += timedelta(seconds=1)
    assert service.expire_jobs(w.jobs_deps) == [jobs[1].id]


# --- the account's lifecycle ----------------------------------------------------------------------


@pytest.fixture
def auth():
    return bootstrap_auth(load_settings({"JWT_SECRET": "a-test-signing-key-of-32-bytes!!"}),
                          users=InMemoryUserRepository(), throttle=InMemoryThrottleStore(),
                          hasher=Argon2PasswordHasher(memory_cost_kib=8, time_cost=1), clock=time.time)


def test_a_password_change_needs_the_current_one_and_revokes_earlier_tokens(auth):
    user = auth.users.add("ann@example.com", auth.hasher.hash(PASSWORD))
    caller = Identity(str(user.id), user.email, 0)
    kw = dict(source_ip="10.0.0.1", now=time.time(), users=auth.users, hasher=auth.hasher, throttle=auth.throttle,
              tokens=auth.tokens)
    with pytest.raises(Unauthorized):
        change_password(caller, {"current_password": "wrong one!", "new_password": "a new long password"}, **kw)
    with pytest.raises(InvalidInput):
        change_password(caller, {"current_password": PASSWORD, "new_password": "short"}, **kw)
    token = change_password(caller, {"current_password": PASSWORD, "new_password": "a new long password"}, **kw)
    assert auth.tokens.verify(token.token).token_version == 1
    with pytest.raises(Unauthorized):
        check_session(caller, auth.users)
    assert check_session(Identity(str(user.id), user.email, 1), auth.users)


def test_deleting_an_account_removes_its_jobs_files_uploads_and_records(auth):
    w = world()
    user = auth.users.add("ann@example.com", auth.hasher.hash(PASSWORD))
    caller = Identity(str(user.id), user.email, 0)
    job = post_video(w, caller)
    create_upload(w, 5000, caller)
    w.uploads_deps.jobs.store.write_chunks(VIDEOS_BUCKET, next(iter(w.uploads.rows.values())).upload.id, 0, b"x")
    other = post_video(w)
    d = w.accounts(auth)
    with pytest.raises(Unauthorized):
        accounts.delete_account(d, caller, {"password": "not it"}, source_ip=None)
    gone = accounts.delete_account(d, caller, {"password": PASSWORD}, source_ip=None)
    assert (gone.jobs, gone.jobs_removed_now, gone.uploads) == (1, 1, 1)
    assert auth.users.get(user.id) is None and w.jobs.get(job.id) is None and w.uploads.rows == {}
    assert w.store.stat(VIDEOS_BUCKET, job.video_id) is None and w.store.chunks == {}
    assert w.jobs.get(other.id) is not None  # someone else's
    with pytest.raises(Unauthorized):
        check_session(caller, auth.users)


def test_registrations_are_limited_per_address():
    rates = InMemoryRateLimiter()
    now = World(load_settings({})).clock()
    for _ in range(3):
        admit_registration(rates, "203.0.113.9", limit=3, now=now)
    with pytest.raises(TooManyRequests) as refused:
        admit_registration(rates, "203.0.113.9", limit=3, now=now)
    assert refused.value.code == "registration_rate_exceeded" and refused.value.retry_after == 3600
    admit_registration(rates, "203.0.113.10", limit=3, now=now)
    for _ in range(3):  # IPv6: one /64 is one address
        admit_registration(rates, f"2001:db8::{uuid.uuid4().hex[:4]}", limit=3, now=now)
    with pytest.raises(TooManyRequests):
        admit_registration(rates, "2001:db8::1", limit=3, now=now)


# --- webhooks: the signature and where they may go -------------------------------------------------


def test_the_signature_verifies_and_refuses_tampering_and_replays():
    body = b'{"id":"evt_1"}'
    header = signature_header("whsec_x", 1_700_000_000, body)
    assert header.startswith("t=1700000000,v1=") and len(header.split("v1=")[1]) == 64
    assert verify("whsec_x", header, body, now=1_700_000_100)
    assert not verify("whsec_x", header, body + b" ", now=1_700_000_100)
    assert not verify("whsec_y", header, body, now=1_700_000_100)
    assert not verify("whsec_x", header, body, now=1_700_000_000 + 301)  # too old: a replay


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "224.0.0.1", "::1", "fe80::1", "fc00::1",
                                     "fd00:ec2::254", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "2002:a00::1"])
def test_non_public_addresses(address):
    assert not is_public(ipaddress.ip_address(address))


def test_public_addresses_and_names_resolving_to_them():
    assert is_public(ipaddress.ip_address("93.184.215.14")) and is_public(ipaddress.ip_address("2606:4700::1"))
    public = parse_allowed_hosts("")
    assert check_callback_url("https://hooks.example.com/x?y=1", public, lambda h, p: ["93.184.215.14"])
    with pytest.raises(ForbiddenTarget, match="non-public"):  # every address must be public, not one
        check_callback_url("https://hooks.example.com/", public, lambda h, p: ["93.184.215.14", "10.0.0.1"])


def test_allowed_hosts_open_names_and_networks():
    allowed = parse_allowed_hosts("hooks.internal, 10.20.0.0/16")
    target = parse_callback_url("http://hooks.internal:8080/x")
    assert resolve_target(target, allowed, lambda h, p: ["192.168.0.9"]) == ["192.168.0.9"]
    assert check_callback_url("http://10.20.3.4/x", allowed)
    with pytest.raises(ForbiddenTarget):
        check_callback_url("http://10.21.3.4/x", allowed)
    with pytest.raises(ValueError):
        parse_allowed_hosts("http://x/")
    with pytest.raises(ValueError, match="WEBHOOK_ALLOWED_HOSTS"):
        from vid2mp3.errors import ConfigError

        try:
            load_settings({"WEBHOOK_ALLOWED_HOSTS": "not a host/"})
        except ConfigError as exc:
            raise ValueError(str(exc)) from None


@pytest.mark.parametrize("url", ["ftp://example.com/", "http://user:pw@example.com/", "https:///x", "example.com",
                                 "http://example.com/" + "x" * 2048, "http://exa mple.com/"])
def test_urls_that_are_not_callback_urls(url):
    with pytest.raises(ForbiddenTarget):
        parse_callback_url(url)


def test_a_callback_url_is_checked_at_upload_on_both_paths():
    w = world()
    job = post_video(w, callback_url="https://hooks.example.com/done")
    assert job.callback_url == "https://hooks.example.com/done"
    with pytest.raises(InvalidInput) as refused:
        post_video(w, callback_url="http://169.254.169.254/latest")
    assert refused.value.code == "invalid_callback_url"
    import base64

    encoded = "callback_url " + base64.b64encode(b"http://127.0.0.1:8080/").decode()
    with pytest.raises(InvalidInput):
        create_upload(w, 1000, metadata=encoded)
    encoded = "callback_url " + base64.b64encode(b"https://hooks.example.com/tus").decode()
    assert create_upload(w, 1000, metadata=encoded).upload.options["callback_url"] == "https://hooks.example.com/tus"


# --- headers ---------------------------------------------------------------------------------------


def test_standard_headers_fill_in_without_overriding():
    out = with_standard_headers({"statusCode": 200, "headers": {"cache-control": "private"}, "body": ""})
    assert out["headers"] == {"cache-control": "private", "X-Content-Type-Options": "nosniff"}
    out = with_standard_headers({"statusCode": 302, "multiValueHeaders": {"Cache-Control": ["no-store"]}})
    assert out["headers"] == {"X-Content-Type-Options": "nosniff"}


def test_every_upload_function_response_carries_them(monkeypatch):
    from functions.upload import app as upload
    from functions.upload import videos
    from tests.support.apigw import apigw_event

    w = world()
    for module in (upload, videos):
        monkeypatch.setattr(module.wiring, "jobs", w.jobs_deps)
        monkeypatch.setattr(module.wiring, "uploads", w.uploads_deps)
    events = ((videos, apigw_event("GET", "/videos", caller=ALICE)),
              (videos, apigw_event("GET", "/videos/{id}", path_id="nope")),
              (upload, apigw_event("OPTIONS", "/uploads")),
              (upload, apigw_event("POST", "/videos", body=b"x" * (11 * 1024 * 1024))))
    for module, event in events:
        response = module.handler(event, None)
        assert response["headers"]["X-Content-Type-Options"] == "nosniff", event["resource"]
        assert response["headers"]["Cache-Control"] == "no-store", event["resource"]
        json.dumps(response)

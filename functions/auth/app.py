"""Auth function: POST /auth/register, POST /auth/login, GET and DELETE /auth/me, POST /auth/password,
POST /auth/webhook-secret. A thin adapter over vid2mp3.auth and vid2mp3.accounts.

The TOKEN authorizer that guards the other routes lives beside it, in authorizer.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalice.app import Request, Response

from vid2mp3 import accounts
from vid2mp3.accounts import AccountDeps
from vid2mp3.api import create_app, json_response, lambda_handler, route
from vid2mp3.auth import service
from vid2mp3.auth.identity import Identity, check_session, identity_from_authorizer
from vid2mp3.auth.validation import json_object
from vid2mp3.bootstrap import AuthDeps, bootstrap_accounts, bootstrap_auth
from vid2mp3.log import get_logger

logger = get_logger("auth")
app = create_app("auth", logger)
handler = lambda_handler(app, logger)  # the Lambda handler: the app within AWS's payload limits
_deps: AuthDeps | None = None
_accounts: AccountDeps | None = None

# A token response must not be stored by any cache (RFC 6749, section 5.1).
NO_STORE = {"Cache-Control": "no-store"}


def deps() -> AuthDeps:
    """Bootstrapped on the first request of a cold start, then reused."""
    global _deps
    if _deps is None:
        _deps = bootstrap_auth()
    return _deps


def account_deps() -> AccountDeps:
    global _accounts
    if _accounts is None:
        _accounts = bootstrap_accounts(deps(), logger=logger)
    return _accounts


def _caller() -> Identity:
    """The caller, whose token must still be good (not revoked by a password change or a deletion)."""
    identity = identity_from_authorizer((_request().context or {}).get("authorizer"))
    return check_session(identity, deps().users)


def _request() -> Request:
    request = app.current_request
    if request is None:  # only outside a request, which a route never is
        raise RuntimeError("no current request")
    return request


def _body() -> dict[str, Any]:
    # Parsed here rather than with Chalice's json_body, so that an empty body or one sent without a
    # Content-Type gets the same 400 `invalid_json` as malformed JSON.
    return json_object(_request().raw_body)


def _source_ip() -> str | None:
    identity = (_request().context or {}).get("identity") or {}
    source_ip = identity.get("sourceIp")
    return source_ip if isinstance(source_ip, str) and source_ip else None


@route(app, "/auth/register", methods=["POST"], content_types=["application/json"])
def register() -> Response:
    d = deps()
    if d.rates is not None:
        service.admit_registration(d.rates, _source_ip(), limit=d.settings.registrations_per_hour_per_ip,
                                   now=datetime.fromtimestamp(d.clock(), UTC))
    user = service.register(_body(), users=d.users, hasher=d.hasher)
    logger.info("user registered", extra={"user_id": str(user.id)})
    return json_response({"id": str(user.id), "email": user.email}, 201)


@route(app, "/auth/login", methods=["POST"], content_types=["application/json"])
def login() -> Response:
    d = deps()
    result = service.login(
        _body(),
        source_ip=_source_ip(),
        now=d.clock(),
        users=d.users,
        hasher=d.hasher,
        throttle=d.throttle,
        tokens=d.tokens,
    )
    logger.info("logged in", extra={"user_id": str(result.user.id), "hash_upgraded": result.rehashed})
    body = {"access_token": result.token.token, "token_type": "Bearer", "expires_in": result.token.expires_in}
    return json_response(body, 200, headers=NO_STORE)


@route(app, "/auth/me", methods=["GET"])
def me() -> Response:
    return json_response(accounts.me(account_deps(), _caller()))


@route(app, "/auth/password", methods=["POST"], content_types=["application/json"])
def change_password() -> Response:
    d = deps()
    caller = _caller()
    token = service.change_password(caller, _body(), source_ip=_source_ip(), now=d.clock(), users=d.users,
                                    hasher=d.hasher, throttle=d.throttle, tokens=d.tokens)
    logger.info("password changed; earlier tokens revoked", extra={"user_id": caller.user_id})
    body = {"access_token": token.token, "token_type": "Bearer", "expires_in": token.expires_in}
    return json_response(body, 200, headers=NO_STORE)


@route(app, "/auth/me", methods=["DELETE"], content_types=["application/json"])
def delete_me() -> Response:
    caller = _caller()
    gone = accounts.delete_account(account_deps(), caller, _body(), source_ip=_source_ip())
    logger.info("account deleted", extra={"user_id": caller.user_id, "jobs": gone.jobs,
                                          "jobs_removed_now": gone.jobs_removed_now, "uploads": gone.uploads})
    return Response(body="", status_code=204)


@route(app, "/auth/webhook-secret", methods=["POST"])
def rotate_webhook_secret() -> Response:
    secret = accounts.rotate_webhook_secret(account_deps(), _caller())
    return json_response({"webhook_secret": secret}, 200, headers=NO_STORE)

"""The account as its owner manages it: GET /auth/me (with usage against every quota and the webhook
signing secret), the secret's rotation, and DELETE /auth/me, which removes the account and everything
that is theirs.

DELETE /auth/me, once the password is confirmed:

1. every job of the account is marked deleted in one statement: hidden at once, and every transition
   refused, so a conversion running right now ends without writing anything back (convert removes the
   MP3 it made, as for a job deleted during its conversion);
2. the account row goes: its tokens are refused at once (the functions check the account on every
   request, whatever the gateway's authorizer cache says);
3. uploads (rows and every chunk), webhook records and rate records go, then each job's video, MP3 and
   export copy and its row, for at most DELETE_BUDGET_S; should anything be left (a very large account,
   a crash), the scheduled re-drive purges those jobs like any deleted job, within the hour.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vid2mp3.auth.identity import Identity
from vid2mp3.auth.passwords import PasswordHasher
from vid2mp3.auth.service import confirm_password
from vid2mp3.auth.throttle import LoginThrottle
from vid2mp3.auth.users import UserRepository
from vid2mp3.auth.validation import parse_password_confirmation
from vid2mp3.errors import Unauthorized
from vid2mp3.jobs import service as jobs_service
from vid2mp3.quotas import UPLOADS
from vid2mp3.quotas.service import Quotas, report
from vid2mp3.uploads import service as uploads_service
from vid2mp3.webhooks.records import DeliveryLog
from vid2mp3.webhooks.signing import new_secret

DELETE_BUDGET_S = 15.0  # of API Gateway's 29 s


@dataclass(frozen=True)
class AccountDeps:
    users: UserRepository
    hasher: PasswordHasher
    throttle: LoginThrottle
    quotas: Quotas
    webhooks: DeliveryLog
    # Jobs and uploads with their stores (GridFS, the export bucket): built on first need.
    uploads: Callable[[], uploads_service.UploadsDeps]
    clock: Callable[[], float]


def _user_id(caller: Identity) -> uuid.UUID:
    try:
        return uuid.UUID(caller.user_id)
    except ValueError:
        raise Unauthorized() from None


def me(d: AccountDeps, caller: Identity) -> dict[str, Any]:
    user = d.users.get(_user_id(caller))
    if user is None:
        raise Unauthorized("This account no longer exists.", code="account_deleted")
    return {"id": str(user.id), "email": user.email, "webhook_secret": user.webhook_secret,
            "usage": report(d.quotas, str(user.id))}


def rotate_webhook_secret(d: AccountDeps, caller: Identity) -> str:
    """A new signing secret; deliveries from now on are signed with it."""
    user = d.users.rotate_webhook_secret(_user_id(caller), new_secret())
    if user is None:
        raise Unauthorized("This account no longer exists.", code="account_deleted")
    return user.webhook_secret


@dataclass(frozen=True)
class Deleted:
    jobs: int
    jobs_removed_now: int
    uploads: int


def delete_account(d: AccountDeps, caller: Identity, body: dict[str, Any], *, source_ip: str | None) -> Deleted:
    password = parse_password_confirmation(body)
    user = confirm_password(caller, password, source_ip=source_ip, now=d.clock(), users=d.users, hasher=d.hasher,
                            throttle=d.throttle)
    owner = str(user.id)
    ud = d.uploads()
    jobs = ud.jobs.jobs.mark_owner_deleted(owner)
    d.users.delete(user.id)
    uploads = uploads_service.purge_owner(ud, owner)
    d.webhooks.delete_for_owner(owner)
    d.quotas.rates.forget(UPLOADS, owner)
    removed = jobs_service.remove_jobs(ud.jobs, jobs, budget_s=DELETE_BUDGET_S)
    return Deleted(len(jobs), removed, uploads)

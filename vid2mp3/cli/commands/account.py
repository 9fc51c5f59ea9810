"""register, login, logout."""

from __future__ import annotations

import argparse

from vid2mp3.cli.context import Context
from vid2mp3.cli.errors import OK
from vid2mp3.cli.session import log_in


def register(ctx: Context, args: argparse.Namespace) -> int:
    """Make the account, then log in with it, so that `convert` works next."""
    password = ctx.password("Choose a password: ", confirm=True)
    with ctx.api() as api:
        account = api.post_json("/auth/register", {"email": args.email, "password": password}, auth=False)
        login = log_in(api, args.email, password)
    ctx.credentials.save(ctx.api_url.url, login)
    ctx.emit({"id": account["id"], "email": account["email"], "logged_in": True},
             f"Registered {account['email']} and logged in.")
    return OK


def login(ctx: Context, args: argparse.Namespace) -> int:
    password = ctx.password(f"Password for {args.email}: ")
    with ctx.api() as api:
        kept = log_in(api, args.email, password)
    ctx.credentials.save(ctx.api_url.url, kept)
    ctx.emit({"email": kept.email, "api": ctx.api_url.url, "expires_at": kept.expires_at},
             f"Logged in as {kept.email} at {ctx.api_url.url}.")
    return OK


def logout(ctx: Context, args: argparse.Namespace) -> int:
    forgot = ctx.credentials.forget(ctx.api_url.url)
    ctx.emit({"logged_out": forgot}, "Logged out." if forgot else "Was not logged in.")
    return OK

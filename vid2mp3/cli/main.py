"""`vid2mp3`: the command line. Parses the arguments, runs one command, and turns whatever stopped it
into one line and an exit code (0 done, 1 failed, 2 usage, 3 the API could not be reached)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

import httpx
from rich.console import Console

from vid2mp3.cli.commands import account, convert, jobs
from vid2mp3.cli.config import config_dir, resolve_api_url
from vid2mp3.cli.context import Context, report_failure
from vid2mp3.cli.errors import FAILED, INTERRUPTED, USAGE, CliError, Unreachable

Command = Callable[[Context, argparse.Namespace], int]

EPILOG = """\
The API's URL comes from --api, else VID2MP3_API, else .vid2mp3/api-url (written by `make run`) in this
directory or a parent. Exit codes: 0 done, 1 failed (a conversion, a refused file, a wrong password),
2 usage, 3 the API could not be reached, 130 interrupted (run the same command again to continue)."""


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", metavar="URL", help="the API's URL (its stage URL)", default=argparse.SUPPRESS)
    common.add_argument("--json", action="store_true", help="print the result as JSON, for scripts",
                        default=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(prog="vid2mp3", description="Convert videos to MP3s with the vid2mp3 service.",
                                     epilog=EPILOG, parents=[common],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version="%(prog)s 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, run: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(run=run)
        return p

    command("register", account.register, "make an account (the password is asked for, or read from "
            "standard input) and log in").add_argument("email")
    command("login", account.login, "log in; the token is kept in your config directory (mode 0600)"
            ).add_argument("email")
    command("logout", account.logout, "forget the kept login for this API")
    p = command("convert", convert.convert, "upload videos, convert them, download the MP3s (resumable: "
                "after Ctrl-C, the same command continues)")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--bitrate", help="MP3 bitrate: 96k, 128k, 192k (default), 256k or 320k")
    p.add_argument("--out", type=Path, default=Path(), metavar="DIR", help="where the MP3s go (default: here)")
    p.add_argument("--no-wait", action="store_true", help="upload, print the job ids, and return")
    command("list", jobs.list_jobs, "your conversions, newest first")
    command("status", jobs.status, "one conversion: its state, progress, MP3 or why it failed").add_argument("id")
    p = command("download", jobs.download, "download a conversion's MP3")
    p.add_argument("id")
    p.add_argument("-o", "--output", type=Path, metavar="PATH", help="file or directory (default: here)")
    command("rm", jobs.remove, "delete conversions: the video and the MP3").add_argument("ids", nargs="+",
                                                                                         metavar="ID")
    return parser


def main(argv: Sequence[str] | None = None, *, transport: httpx.BaseTransport | None = None,
         stdin: TextIO | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2), already printed by argparse
        return exc.code if isinstance(exc.code, int) else USAGE
    as_json = bool(getattr(args, "json", False))
    out, err = Console(file=stdout or sys.stdout), Console(file=stderr or sys.stderr)
    for console in (out, err):
        if not console.is_terminal:  # a pipe or a file: lines as long as they need to be
            console.width = 1000
    try:
        api_url = resolve_api_url(getattr(args, "api", None), os.environ, Path.cwd())
    except CliError as exc:
        report_failure(out, err, exc, as_json=as_json)
        return exc.exit_code
    ctx = Context(api_url, config_dir(), stdin or sys.stdin, out, err, json=as_json, transport=transport)
    run: Command = args.run
    try:
        return run(ctx, args)
    except Unreachable as exc:
        if api_url.local_run:
            exc.message += " Is `make run` running?"
        ctx.failure(exc)
        return exc.exit_code
    except CliError as exc:
        ctx.failure(exc)
        return exc.exit_code
    except OSError as exc:  # a file that cannot be read or written
        ctx.failure(CliError(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), code="os_error"))
        return FAILED
    except KeyboardInterrupt:
        err.print("vid2mp3: interrupted.", markup=False, highlight=False)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

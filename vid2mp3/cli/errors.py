"""What can stop a command, each with the exit code it ends with and one line for the user."""

from __future__ import annotations

# Exit codes (README "Command line"): 0 done, 1 failed, 2 usage, 3 the API could not be reached.
OK = 0
FAILED = 1
USAGE = 2
UNREACHABLE = 3
INTERRUPTED = 130  # the shell's convention for Ctrl-C


class CliError(Exception):
    """One line for the user, an exit code, and a short code for --json."""

    exit_code = FAILED
    code = "failed"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class UsageError(CliError):
    exit_code = USAGE
    code = "usage"


class Unreachable(CliError):
    exit_code = UNREACHABLE
    code = "unreachable"


class ApiError(CliError):
    """The API answered with an error: its status, code and message (`{"error": {"code", "message"}}`)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.status = status


class NotLoggedIn(CliError):
    code = "not_logged_in"

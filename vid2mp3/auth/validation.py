"""Request bodies of /auth/register and /auth/login -> normalised credentials, or one InvalidInput.

The message names every field at fault, e.g. "email: is required; password: must be at least 10
characters long." Password rules follow NIST SP 800-63B: 10 to 1024 characters, no composition rules.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from vid2mp3.errors import InvalidInput

PASSWORD_MIN = 10
PASSWORD_MAX = 1024
EMAIL_MAX = 254  # RFC 5321's limit for a forward path, less the angle brackets


@dataclass(frozen=True)
class Credentials:
    email: str  # normalised
    password: str = field(repr=False)


def normalise_email(raw: str) -> str:
    """Strip and lowercase the whole address (NFC first, so composed and decomposed forms are one)."""
    return unicodedata.normalize("NFC", raw.strip()).lower()


def json_object(raw: bytes | str | None) -> dict[str, Any]:
    """The request body as a JSON object; InvalidInput `invalid_json` for anything else."""
    try:
        body = json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidInput("The request body must be a JSON object.", code="invalid_json")
    return body


class _Registration(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", hide_input_in_errors=True)

    email: str = Field(max_length=320)
    password: str = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        email = normalise_email(value)
        if not email:
            raise ValueError("is required")
        if len(email) > EMAIL_MAX:
            raise ValueError(f"must be at most {EMAIL_MAX} characters long")
        try:
            validate_email(email, check_deliverability=False)
        except EmailNotValidError as exc:
            raise ValueError(f"is not a valid email address ({exc})") from None
        return email


class _Login(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", hide_input_in_errors=True)

    # No syntax check: an address that could not register just fails to log in, like any other.
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        email = normalise_email(value)
        if not email:
            raise ValueError("is required")
        return email


def _describe(error: ErrorDetails) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "string_type":
        return "must be a string"
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "is required" if n == 1 else f"must be at least {n} characters long"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters long"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return str(error["msg"]).lower()


def _parse(model: type[_Registration] | type[_Login], body: dict[str, Any]) -> Credentials:
    parsed = _validated(model, body)
    assert isinstance(parsed, _Registration | _Login)
    return Credentials(email=parsed.email, password=parsed.password)


def parse_registration(body: dict[str, Any]) -> Credentials:
    return _parse(_Registration, body)


def parse_login(body: dict[str, Any]) -> Credentials:
    return _parse(_Login, body)


class _PasswordChange(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", hide_input_in_errors=True)

    current_password: str = Field(min_length=1, max_length=PASSWORD_MAX)
    new_password: str = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)


class _PasswordConfirmation(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", hide_input_in_errors=True)

    password: str = Field(min_length=1, max_length=PASSWORD_MAX)


def _validated(model: type[BaseModel], body: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for error in exc.errors(include_input=False, include_url=False):
            name = ".".join(str(part) for part in error["loc"]) or "body"
            problems.setdefault(name, _describe(error))
        message = "; ".join(f"{name}: {problem}" for name, problem in problems.items())
        raise InvalidInput(f"{message}.", code="invalid_input") from None


def parse_password_change(body: dict[str, Any]) -> tuple[str, str]:
    """(current, new) of POST /auth/password."""
    parsed = _validated(_PasswordChange, body)
    assert isinstance(parsed, _PasswordChange)
    return parsed.current_password, parsed.new_password


def parse_password_confirmation(body: dict[str, Any]) -> str:
    """The password that confirms DELETE /auth/me."""
    parsed = _validated(_PasswordConfirmation, body)
    assert isinstance(parsed, _PasswordConfirmation)
    return parsed.password

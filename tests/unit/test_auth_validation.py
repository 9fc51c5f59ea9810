"""Request bodies of /auth/register and /auth/login: normalisation and field-level messages."""

from __future__ import annotations

import pytest

from vid2mp3.auth.validation import json_object, normalise_email, parse_login, parse_registration
from vid2mp3.errors import InvalidInput

GOOD_PASSWORD = "correct horse battery"


def refused(parse, body) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        parse(body)
    return info.value


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("  Alice@Example.COM \n", "alice@example.com"),
        ("BOB@EXAMPLE.COM", "bob@example.com"),
        ("E\u0301lise@example.com", "\u00e9lise@example.com"),  # decomposed -> composed, then lowered
    ],
)
def test_email_is_stripped_and_lowercased(raw: str, normalised: str) -> None:
    assert normalise_email(raw) == normalised
    assert parse_registration({"email": raw, "password": GOOD_PASSWORD}).email == normalised
    assert parse_login({"email": raw, "password": "x"}).email == normalised


def test_valid_registration_keeps_the_password_as_sent_and_out_of_repr() -> None:
    credentials = parse_registration({"email": "a@example.com", "password": "  spaced out  "})
    assert credentials.password == "  spaced out  "
    assert "spaced" not in repr(credentials)


@pytest.mark.parametrize(
    "email",
    [
        "",
        "   ",
        "plainaddress",
        "a@b",
        "two@@example.com",
        "a b@example.com",
        "a@localhost",
        "@example.com",
        "a@example.com" + "m" * 300,
    ],
)
def test_bad_emails_are_refused_with_a_field_message(email: str) -> None:
    error = refused(parse_registration, {"email": email, "password": GOOD_PASSWORD})
    assert error.code == "invalid_input"
    assert error.message.startswith("email: ")
    assert "password" not in error.message


@pytest.mark.parametrize("length", [10, 11, 1024])
def test_password_lengths_accepted(length: int) -> None:
    assert len(parse_registration({"email": "a@example.com", "password": "p" * length}).password) == length


def test_no_composition_rules() -> None:
    for password in ["aaaaaaaaaa", "0000000000", "          ", "éééééééééé", "🔑" * 10]:
        parse_registration({"email": "a@example.com", "password": password})


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (9, "password: must be at least 10 characters long."),
        (1025, "password: must be at most 1024 characters long."),
    ],
)
def test_password_lengths_refused(length: int, expected: str) -> None:
    error = refused(parse_registration, {"email": "a@example.com", "password": "p" * length})
    assert error.message == expected


def test_missing_fields_are_named() -> None:
    assert refused(parse_registration, {}).message == "email: is required; password: is required."
    assert refused(parse_registration, {"email": "a@example.com"}).message == "password: is required."
    assert refused(parse_login, {"password": "x"}).message == "email: is required."


@pytest.mark.parametrize("value", [123, None, True, ["a@example.com"], {"a": 1}, 1.5])
def test_wrong_types_are_named(value: object) -> None:
    error = refused(parse_registration, {"email": value, "password": value})
    assert error.message == "email: must be a string; password: must be a string."
    error = refused(parse_login, {"email": "a@example.com", "password": value})
    assert error.message == "password: must be a string."


def test_messages_never_echo_the_password() -> None:
    error = refused(parse_registration, {"email": "bad", "password": "short-pw"})
    assert "short-pw" not in error.message


def test_unknown_fields_are_ignored() -> None:
    parse_registration({"email": "a@example.com", "password": GOOD_PASSWORD, "name": "A"})


def test_login_accepts_any_nonempty_email_and_a_short_password() -> None:
    # Login does not re-apply registration rules; wrong credentials simply fail to log in.
    assert parse_login({"email": "Not-An-Email", "password": "x"}).email == "not-an-email"
    assert (
        refused(parse_login, {"email": "a@example.com", "password": ""}).message == "password: is required."
    )
    assert refused(parse_login, {"email": "a@example.com", "password": "p" * 1025}).message == (
        "password: must be at most 1024 characters long."
    )


@pytest.mark.parametrize("raw", [b"", b"   ", b"{", b"not json", b"\xff\xfe", b"{'single': 'quotes'}"])
def test_non_json_bodies(raw: bytes) -> None:
    error = refused(json_object, raw)
    assert (error.code, error.message) == ("invalid_json", "The request body is not valid JSON.")


@pytest.mark.parametrize("raw", [b"[]", b"null", b'"a string"', b"42", b"true"])
def test_json_that_is_not_an_object(raw: bytes) -> None:
    error = refused(json_object, raw)
    assert (error.code, error.message) == ("invalid_json", "The request body must be a JSON object.")


def test_json_object() -> None:
    assert json_object(b'{"email": "a@example.com"}') == {"email": "a@example.com"}
    assert json_object('{"x": 1}') == {"x": 1}

"""argon2id with OWASP's parameters, verification, and rehash detection."""

from __future__ import annotations

import pytest
from argon2 import extract_parameters

from vid2mp3.auth.passwords import Argon2PasswordHasher


@pytest.fixture(scope="module")
def hasher() -> Argon2PasswordHasher:
    return Argon2PasswordHasher()


def test_hash_is_argon2id_with_owasp_parameters(hasher: Argon2PasswordHasher) -> None:
    stored = hasher.hash("correct horse battery")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    params = extract_parameters(stored)
    assert (params.memory_cost, params.time_cost, params.parallelism) == (19 * 1024, 2, 1)
    assert (params.salt_len, params.hash_len) == (16, 32)
    assert "correct horse battery" not in stored


def test_salted(hasher: Argon2PasswordHasher) -> None:
    assert hasher.hash("same password") != hasher.hash("same password")


def test_verify(hasher: Argon2PasswordHasher) -> None:
    stored = hasher.hash("correct horse battery")
    assert hasher.verify(stored, "correct horse battery")
    assert not hasher.verify(stored, "correct horse batterY")
    assert not hasher.verify(stored, "")


def test_unreadable_stored_hash_does_not_verify(hasher: Argon2PasswordHasher) -> None:
    assert not hasher.verify("not a hash", "whatever")
    assert not hasher.verify("", "whatever")
    assert hasher.needs_rehash("not a hash")


def test_unicode_forms_verify_alike(hasher: Argon2PasswordHasher) -> None:
    stored = hasher.hash("caf\u00e9 au lait!")  # composed é
    assert hasher.verify(stored, "cafe\u0301 au lait!")  # decomposed é


def test_current_parameters_need_no_rehash(hasher: Argon2PasswordHasher) -> None:
    assert not hasher.needs_rehash(hasher.hash("correct horse battery"))


@pytest.mark.parametrize(
    "old", [{"memory_cost_kib": 8 * 1024}, {"time_cost": 1}, {"memory_cost_kib": 64 * 1024, "time_cost": 3}]
)
def test_other_parameters_need_rehash(hasher: Argon2PasswordHasher, old: dict[str, int]) -> None:
    stored = Argon2PasswordHasher(**old).hash("correct horse battery")
    assert hasher.verify(stored, "correct horse battery")  # old hashes still verify...
    assert hasher.needs_rehash(stored)  # ...and are flagged for an upgrade


def test_verify_dummy_costs_a_verification_and_returns_nothing(hasher: Argon2PasswordHasher) -> None:
    assert hasher.verify_dummy("anything at all") is None

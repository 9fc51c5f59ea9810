"""Password hashing with argon2id (argon2-cffi), OWASP's minimum parameters, rehash when they change."""

from __future__ import annotations

import unicodedata
from typing import Protocol

from argon2 import PasswordHasher as _Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP Password Storage Cheat Sheet, argon2id: m=19 MiB, t=2, p=1.
MEMORY_COST_KIB = 19 * 1024
TIME_COST = 2
PARALLELISM = 1
HASH_LEN = 32
SALT_LEN = 16

# Verified against on logins for an unknown email, so that they cost what a wrong password costs.
_DUMMY_PASSWORD = "vid2mp3 dummy password for timing equalisation"


class PasswordHasher(Protocol):
    """The port: hash, verify, and tell when a stored hash was made with other parameters."""

    def hash(self, password: str) -> str: ...

    def verify(self, stored_hash: str, password: str) -> bool: ...

    def verify_dummy(self, password: str) -> None: ...

    def needs_rehash(self, stored_hash: str) -> bool: ...


def _prepare(password: str) -> str:
    # NIST SP 800-63B 5.1.1.2: apply NFKC so that the same password typed on another keyboard or
    # system (composed vs decomposed characters) verifies.
    return unicodedata.normalize("NFKC", password)


class Argon2PasswordHasher:
    """argon2id with OWASP's parameters by default; lower ones only make sense in tests."""

    def __init__(
        self,
        *,
        memory_cost_kib: int = MEMORY_COST_KIB,
        time_cost: int = TIME_COST,
        parallelism: int = PARALLELISM,
    ) -> None:
        self._argon2 = _Argon2(
            time_cost=time_cost,
            memory_cost=memory_cost_kib,
            parallelism=parallelism,
            hash_len=HASH_LEN,
            salt_len=SALT_LEN,
            type=Type.ID,
        )
        # Made once per cold start (one hash), so that no request pays for it.
        self._dummy_hash = self._argon2.hash(_DUMMY_PASSWORD)

    def hash(self, password: str) -> str:
        return str(self._argon2.hash(_prepare(password)))

    def verify(self, stored_hash: str, password: str) -> bool:
        """True when the password matches; False on a mismatch or an unreadable stored hash."""
        try:
            return bool(self._argon2.verify(stored_hash, _prepare(password)))
        except (VerificationError, InvalidHashError):
            return False

    def verify_dummy(self, password: str) -> None:
        """Spend what a verification costs, for a login whose account does not exist."""
        self.verify(self._dummy_hash, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return bool(self._argon2.check_needs_rehash(stored_hash))
        except (InvalidHashError, ValueError):
            return True

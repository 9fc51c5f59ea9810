"""Accounts and login throttling against a real PostgreSQL (`pg_url`: a fresh, migrated database).

Tests share the database, so each one works with its own emails and source addresses.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from vid2mp3.auth import service
from vid2mp3.auth.passwords import Argon2PasswordHasher
from vid2mp3.auth.throttle import LoginThrottle, PostgresThrottleStore, ThrottlePolicy, account_key, ip_key
from vid2mp3.auth.tokens import TokenService
from vid2mp3.auth.users import PostgresUserRepository
from vid2mp3.db.migrate import apply_migrations
from vid2mp3.db.postgres import Postgres
from vid2mp3.errors import Conflict, TooManyRequests, Unauthorized

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
KEY = b"a-test-signing-key-of-32-bytes!!"
_ips = iter(range(1, 2**16))


def schema(url: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(url) as conn:
        return {
            "columns": conn.execute(
                "SELECT table_name, column_name, data_type, is_nullable, column_default"
                " FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2"
            ).fetchall(),
            "indexes": conn.execute(
                "SELECT tablename, indexname, indexdef FROM pg_indexes"
                " WHERE schemaname = 'public' ORDER BY 1, 2"
            ).fetchall(),
            "constraints": conn.execute(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"
            ).fetchall(),
            "migrations": conn.execute(
                "SELECT version, checksum FROM schema_migrations ORDER BY 1"
            ).fetchall(),
        }


@pytest.fixture
def db(pg_url: str) -> Iterator[Postgres]:
    pg = Postgres(pg_url)
    yield pg
    pg.close()


@pytest.fixture(scope="module")
def hasher() -> Argon2PasswordHasher:
    return Argon2PasswordHasher(memory_cost_kib=8, time_cost=1)  # the real parameters: unit tests


@pytest.fixture
def email() -> str:
    return f"alice-{uuid.uuid4().hex[:12]}@example.com"


@pytest.fixture
def ip() -> str:
    n = next(_ips)
    return f"10.77.{n // 256}.{n % 256}"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def register(db: Postgres, hasher: Argon2PasswordHasher, email: str):
    users = PostgresUserRepository(db)
    return service.register({"email": email, "password": PASSWORD}, users=users, hasher=hasher)


def login(
    db: Postgres,
    hasher: Argon2PasswordHasher,
    now: float,
    email: str,
    ip: str | None,
    password: str = PASSWORD,
    throttle: LoginThrottle | None = None,
):
    return service.login(
        {"email": email, "password": password},
        source_ip=ip,
        now=now,
        users=PostgresUserRepository(db),
        hasher=hasher,
        throttle=throttle or LoginThrottle(PostgresThrottleStore(db)),
        tokens=TokenService(KEY),
    )


def count(db: Postgres, sql: str, *params: object) -> int:
    with db.transaction() as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return int(str(row["n"]))


def test_migrations_applied_twice_change_nothing(pg_url: str) -> None:
    before = schema(pg_url)
    assert before["migrations"][0][:1] == ("0001_users",)
    assert apply_migrations(pg_url) == []
    assert schema(pg_url) == before
    tables = {row[0] for row in before["columns"]}
    assert {"users", "login_throttle", "schema_migrations"} <= tables
    assert any("lower(email)" in str(row[2]) and "UNIQUE" in str(row[2]) for row in before["indexes"])


def test_register_stores_the_account(db: Postgres, hasher: Argon2PasswordHasher, email: str) -> None:
    user = register(db, hasher, email.upper())
    assert user.email == email and user.created_at.tzinfo is not None
    with db.transaction() as conn:
        row = conn.execute("SELECT id, email, password_hash FROM users WHERE id = %s", (user.id,)).fetchone()
    assert row is not None and row["email"] == email
    assert str(row["password_hash"]).startswith("$argon2id$")
    found = PostgresUserRepository(db).get(user.id)
    assert found is not None and found.email == email


def test_duplicate_in_another_case_is_a_conflict(
    db: Postgres, hasher: Argon2PasswordHasher, email: str
) -> None:
    register(db, hasher, email)
    with pytest.raises(Conflict) as info:
        register(db, hasher, f"  {email.upper()}")
    assert info.value.code == "email_taken"
    # Even past the application's normalisation, the database refuses a case variant.
    with pytest.raises(Conflict):
        PostgresUserRepository(db).add(email.capitalize(), "x")
    assert count(db, "SELECT count(*) AS n FROM users WHERE lower(email) = %s", email) == 1


def test_concurrent_duplicate_registrations_leave_one_account(pg_url: str, email: str) -> None:
    outcomes: list[str] = []
    start = threading.Barrier(6)

    def attempt() -> None:
        pg = Postgres(pg_url)
        try:
            start.wait()
            PostgresUserRepository(pg).add(email, "hash")
            outcomes.append("created")
        except Conflict:
            outcomes.append("conflict")
        finally:
            pg.close()

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["created"]


def test_login(db: Postgres, hasher: Argon2PasswordHasher, email: str, ip: str) -> None:
    user = register(db, hasher, email)
    result = login(db, hasher, time.time(), f" {email.upper()}", ip)
    assert TokenService(KEY).verify(result.token.token).user_id == str(user.id)
    with pytest.raises(Unauthorized):
        login(db, hasher, time.time(), email, ip, password="wrong password")
    with pytest.raises(Unauthorized):
        login(db, hasher, time.time(), f"nobody-{email}", ip)


def test_login_upgrades_an_old_hash(db: Postgres, hasher: Argon2PasswordHasher, email: str, ip: str) -> None:
    users = PostgresUserRepository(db)
    user = users.add(email, Argon2PasswordHasher(memory_cost_kib=16, time_cost=1).hash(PASSWORD))
    assert login(db, hasher, time.time(), email, ip).rehashed
    stored = users.get(user.id)
    assert stored is not None and not hasher.needs_rehash(stored.password_hash)
    assert not login(db, hasher, time.time(), email, ip).rehashed


def test_throttled_after_five_failures_growing_to_fifteen_minutes(
    db: Postgres, hasher: Argon2PasswordHasher, email: str, ip: str
) -> None:
    register(db, hasher, email)
    clock = Clock()
    for _ in range(5):
        with pytest.raises(Unauthorized):
            login(db, hasher, clock(), email, ip, password="wrong password")
    waits = []
    for _ in range(6):
        with pytest.raises(TooManyRequests) as info:
            login(db, hasher, clock(), email, ip)  # even the right password
        waits.append(info.value.retry_after)
        clock.now += info.value.retry_after
        with pytest.raises(Unauthorized):
            login(db, hasher, clock(), email, ip, password="wrong password")
    assert waits == [60, 120, 240, 480, 900, 900]


def test_success_resets_the_account_counter(
    db: Postgres, hasher: Argon2PasswordHasher, email: str, ip: str
) -> None:
    register(db, hasher, email)
    clock = Clock()
    for _ in range(4):
        with pytest.raises(Unauthorized):
            login(db, hasher, clock(), email, ip, password="wrong password")
    key = account_key(email)
    sql = "SELECT count(*) AS n FROM login_throttle WHERE scope = %s AND key = %s"
    assert count(db, sql, key.scope, key.digest) == 1
    login(db, hasher, clock(), email, ip)
    assert count(db, sql, key.scope, key.digest) == 0
    for _ in range(4):
        with pytest.raises(Unauthorized):
            login(db, hasher, clock(), email, ip, password="wrong password")
    login(db, hasher, clock(), email, ip)


def test_per_ip_throttling(db: Postgres, hasher: Argon2PasswordHasher, email: str, ip: str) -> None:
    throttle = LoginThrottle(PostgresThrottleStore(db), ip_policy=ThrottlePolicy(max_failures=3))
    now = time.time()
    for n in range(3):
        with pytest.raises(Unauthorized):
            login(db, hasher, now, f"{n}-{email}", ip, throttle=throttle)
    with pytest.raises(TooManyRequests) as info:
        login(db, hasher, now, email, ip, throttle=throttle)
    assert info.value.retry_after == 60
    with pytest.raises(Unauthorized):  # from another address the attempt is checked as usual
        login(db, hasher, now, email, f"{ip}0", throttle=throttle)


def test_default_ip_threshold(db: Postgres, hasher: Argon2PasswordHasher, email: str, ip: str) -> None:
    now = time.time()
    for n in range(20):
        with pytest.raises(Unauthorized):
            login(db, hasher, now, f"{n}-{email}", ip)
    with pytest.raises(TooManyRequests):
        login(db, hasher, now, email, ip)


def test_state_is_shared_across_instances(
    pg_url: str, db: Postgres, hasher: Argon2PasswordHasher, email: str, ip: str
) -> None:
    register(db, hasher, email)
    other = Postgres(pg_url)  # another function instance: its own connection
    try:
        now = time.time()
        for n in range(5):
            with pytest.raises(Unauthorized):
                login(db if n % 2 else other, hasher, now, email, ip, password="wrong password")
        for instance in (db, other):
            with pytest.raises(TooManyRequests):
                login(instance, hasher, now, email, ip)
    finally:
        other.close()


def test_concurrent_attempts_are_counted_one_after_the_other(
    pg_url: str, db: Postgres, hasher: Argon2PasswordHasher, email: str, ip: str
) -> None:
    register(db, hasher, email)
    now = time.time()
    outcomes: list[str] = []
    start = threading.Barrier(10)

    def attempt() -> None:
        pg = Postgres(pg_url)
        try:
            start.wait()
            login(pg, hasher, now, email, ip, password="wrong password")
        except Unauthorized:
            outcomes.append("401")
        except TooManyRequests:
            outcomes.append("429")
        finally:
            pg.close()

    threads = [threading.Thread(target=attempt) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Without the per-key lock, all ten could pass the check before the first failure is recorded.
    assert sorted(outcomes) == ["401"] * 5 + ["429"] * 5


def test_throttle_rows_hold_no_email_or_address_and_expire(
    db: Postgres, hasher: Argon2PasswordHasher, email: str, ip: str
) -> None:
    clock = Clock()
    with pytest.raises(Unauthorized):
        login(db, hasher, clock(), email, ip)
    keys = [account_key(email), ip_key(ip)]
    with db.transaction() as conn:
        rows = conn.execute(
            "SELECT scope, key FROM login_throttle WHERE key = ANY(%s) ORDER BY scope",
            ([k.digest for k in keys],),
        ).fetchall()
    assert [(r["scope"], r["key"]) for r in rows] == [(k.scope, k.digest) for k in keys]
    assert all(email not in str(r["key"]) and ip not in str(r["key"]) for r in rows)
    clock.now += 16 * 60
    with pytest.raises(Unauthorized):
        login(db, hasher, clock(), f"later-{email}", None)  # a failure purges what has expired
    assert (
        count(db, "SELECT count(*) AS n FROM login_throttle WHERE key = ANY(%s)", [k.digest for k in keys])
        == 0
    )

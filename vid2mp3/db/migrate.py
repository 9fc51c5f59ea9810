"""Versioned SQL migrations, run at deploy time (never on a cold start).

Files `db/migrations/NNNN_name.sql` are applied in order, each in its own transaction, and
recorded in `schema_migrations`; an advisory lock keeps two deploys from racing. Applying them
twice changes nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from importlib import resources

import psycopg

from vid2mp3.settings import load_settings

_LOCK_KEY = 0x76696432  # "vid2"


def migration_files() -> list[tuple[str, str]]:
    folder = resources.files("vid2mp3.db") / "migrations"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), (folder / name).read_text(encoding="utf-8")) for name in names]


def apply_migrations(database_url: str) -> list[str]:
    """Apply the pending migrations; returns the versions applied by this call."""
    applied: list[str] = []
    with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version text PRIMARY KEY,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {row[0]: row[1] for row in conn.execute("SELECT version, checksum FROM schema_migrations")}
            for version, sql in migration_files():
                checksum = hashlib.sha256(sql.encode()).hexdigest()
                if version in done:
                    if done[version] != checksum:
                        raise RuntimeError(f"migration {version} was changed after it was applied")
                    continue
                with conn.transaction():
                    conn.execute(sql.encode())  # bytes: run as a multi-statement script
                    conn.execute(
                        "INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)", (version, checksum)
                    )
                applied.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Apply vid2mp3's database migrations to DATABASE_URL.")
    parser.parse_args(argv)
    settings = load_settings()
    applied = apply_migrations(settings.database_url)
    print(f"migrations applied: {', '.join(applied) if applied else 'none (up to date)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One typed, frozen settings object, built from the environment at cold start and validated."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from vid2mp3.errors import ConfigError

MIB = 1024 * 1024
BITRATES = ("96k", "128k", "192k", "256k", "320k")


def _check_url(value: str, schemes: tuple[str, ...], what: str) -> str:
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a non-numeric port
    except ValueError as exc:
        raise ValueError(f"is not a valid {what} URL ({exc})") from None
    if parts.scheme not in schemes:
        raise ValueError(f"must start with {' or '.join(s + '://' for s in schemes)}")
    if not parts.hostname:
        raise ValueError(f"has no host in it (expected {schemes[0]}://host[:port]/...)")
    return value


class Settings(BaseModel):
    """Configuration of every function and of the local tooling (see README, "Configuration")."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/vid2mp3"
    mongodb_uri: str = "mongodb://127.0.0.1:27017/vid2mp3"
    mongodb_database: str = "vid2mp3"
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    smtp_host: str = "127.0.0.1"
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 1025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str = "vid2mp3 <no-reply@vid2mp3.local>"
    jwt_secret: SecretStr | None = None
    jwt_previous_secret: SecretStr | None = None
    jwt_ttl_seconds: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] = 3600
    public_base_url: str = "http://127.0.0.1:4566"
    max_upload_bytes: Annotated[int, Field(ge=1)] = 2048 * MIB
    # Resumable uploads not finished this long after they started are removed (tus expiration).
    upload_expiry_seconds: Annotated[int, Field(ge=60, le=30 * 24 * 3600)] = 24 * 3600
    # Origins whose web pages may use the upload API from a browser (CORS): "*" for any, else a
    # comma-separated list such as "https://app.example.com,http://localhost:3000".
    cors_allowed_origins: str = "*"
    # The S3 bucket of export copies (MP3s too large to return through the API; the template's).
    export_bucket: str | None = None
    export_url_ttl_seconds: Annotated[int, Field(ge=30, le=7 * 24 * 3600)] = 300
    # The storage endpoint clients reach, when it is not the one the functions use (Docker Compose).
    export_public_endpoint_url: str | None = None
    max_duration_seconds: Annotated[int, Field(ge=1)] = 3 * 3600
    # --- the public service (issue 13) ---------------------------------------------------------------
    # Keep the uploaded video once its MP3 is committed (off: it is removed then).
    keep_source: bool = False
    # A finished job (done or failed), its MP3 and any export copy are removed this long after it finished.
    retention_hours: Annotated[int, Field(ge=1, le=24 * 365)] = 72
    # Per user: bytes stored (videos kept, MP3s, unfinished uploads at their full length), active jobs
    # (queued + converting, and unfinished uploads, which become jobs), uploads started per hour.
    quota_storage_bytes: Annotated[int, Field(ge=1)] = 10 * 1024 * MIB
    quota_active_jobs: Annotated[int, Field(ge=1, le=10_000)] = 10
    quota_uploads_per_hour: Annotated[int, Field(ge=1, le=100_000)] = 30
    # Accounts created per source address (IPv6: per /64) and hour.
    registrations_per_hour_per_ip: Annotated[int, Field(ge=1, le=100_000)] = 10
    # Hosts or CIDRs webhooks may be sent to besides public addresses (local development, tests):
    # comma-separated, such as "127.0.0.1/32,hooks.internal". Empty: public addresses only.
    webhook_allowed_hosts: str = ""
    ffmpeg_path: str | None = None
    ffprobe_path: str | None = None
    aws_endpoint_url: str | None = None
    log_level: str = "INFO"

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: str) -> str:
        return _check_url(v, ("postgresql", "postgres"), "PostgreSQL")

    @field_validator("mongodb_uri")
    @classmethod
    def _mongodb_uri(cls, v: str) -> str:
        if v.startswith("mongodb+srv://"):
            return v
        return _check_url(v, ("mongodb",), "MongoDB")

    @field_validator("rabbitmq_url")
    @classmethod
    def _rabbitmq_url(cls, v: str) -> str:
        return _check_url(v, ("amqp", "amqps"), "AMQP")

    @field_validator("public_base_url", "aws_endpoint_url", "export_public_endpoint_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        return _check_url(v, ("http", "https"), "HTTP").rstrip("/")

    @field_validator("jwt_secret", "jwt_previous_secret")
    @classmethod
    def _jwt_secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value().encode()) < 32:
            raise ValueError("must be at least 32 bytes long")
        return v

    @field_validator("cors_allowed_origins")
    @classmethod
    def _origins(cls, v: str) -> str:
        for origin in (o.strip() for o in v.split(",")):
            if origin != "*":
                _check_url(origin, ("http", "https"), "origin")
                if urlsplit(origin).path not in ("", "/"):
                    raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], no path)")
        return v

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _webhook_hosts(cls, v: str) -> str:
        from vid2mp3.webhooks.targets import parse_allowed_hosts

        parse_allowed_hosts(v)  # ValueError naming the entry
        return v

    @property
    def retention_seconds(self) -> int:
        return self.retention_hours * 3600

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        return tuple(o.strip().rstrip("/") for o in self.cors_allowed_origins.split(",") if o.strip())

    def jwt_key(self) -> bytes:
        """The current signing key; a function that signs or verifies tokens cannot start without it."""
        if self.jwt_secret is None:
            raise ConfigError("JWT_SECRET", "is not set")
        return self.jwt_secret.get_secret_value().encode()


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build and validate the settings; a problem becomes one ConfigError naming the variable."""
    env = dict(os.environ if environ is None else environ)
    fields = {name.upper() for name in Settings.model_fields}
    values = {k.lower(): v for k, v in env.items() if k.upper() in fields and v != ""}
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        variable = str(first["loc"][0]).upper() if first["loc"] else "configuration"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(variable, message) from None

import pytest

from vid2mp3.errors import ConfigError
from vid2mp3.settings import load_settings

SECRET = "s" * 32


def test_defaults_are_usable_locally():
    s = load_settings({})
    assert s.jwt_ttl_seconds == 3600
    assert s.max_upload_bytes == 2 * 1024**3  # 2 GiB: resumable uploads take any size up to it
    assert s.upload_expiry_seconds == 24 * 3600 and s.allowed_origins == ("*",) and s.export_bucket is None
    assert s.jwt_secret is None


def test_every_documented_variable_is_honoured():
    env = {
        "DATABASE_URL": "postgresql://u:p@db:5432/x",
        "MONGODB_URI": "mongodb://m:27017/x",
        "RABBITMQ_URL": "amqp://g:g@mq:5672/%2F",
        "SMTP_HOST": "mail",
        "SMTP_PORT": "2525",
        "SMTP_USERNAME": "user",
        "SMTP_PASSWORD": "pw",
        "SMTP_STARTTLS": "true",
        "MAIL_FROM": "a@b.c",
        "JWT_SECRET": SECRET,
        "JWT_TTL_SECONDS": "600",
        "PUBLIC_BASE_URL": "https://api.example/v1/",
        "MAX_UPLOAD_BYTES": "1000",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
    }
    s = load_settings(env)
    assert s.database_url == env["DATABASE_URL"]
    assert s.mongodb_uri == env["MONGODB_URI"]
    assert s.rabbitmq_url == env["RABBITMQ_URL"]
    assert (s.smtp_host, s.smtp_port, s.smtp_username, s.smtp_starttls) == ("mail", 2525, "user", True)
    assert s.smtp_password is not None and s.smtp_password.get_secret_value() == "pw"
    assert s.mail_from == "a@b.c"
    assert s.jwt_key() == SECRET.encode()
    assert s.jwt_ttl_seconds == 600
    assert s.public_base_url == "https://api.example/v1"
    assert s.max_upload_bytes == 1000
    assert s.aws_endpoint_url == "http://127.0.0.1:4566"


def test_settings_are_frozen():
    s = load_settings({})
    with pytest.raises(ValueError):
        s.smtp_port = 1  # type: ignore[misc]


def test_empty_values_mean_unset():
    s = load_settings({"JWT_PREVIOUS_SECRET": "", "SMTP_USERNAME": ""})
    assert s.jwt_previous_secret is None and s.smtp_username is None


@pytest.mark.parametrize(
    ("env", "variable", "fragment"),
    [
        ({"RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:notaport/"}, "RABBITMQ_URL", "not a valid AMQP URL"),
        ({"RABBITMQ_URL": "http://x/"}, "RABBITMQ_URL", "amqp://"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL", "postgresql://"),
        ({"MONGODB_URI": "mongodb://"}, "MONGODB_URI", "no host"),
        ({"JWT_SECRET": "short"}, "JWT_SECRET", "at least 32 bytes"),
        ({"SMTP_PORT": "70000"}, "SMTP_PORT", "less than or equal"),
        ({"MAX_UPLOAD_BYTES": "lots"}, "MAX_UPLOAD_BYTES", "integer"),
    ],
)
def test_bad_configuration_is_one_line_naming_the_variable(env, variable, fragment):
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    message = str(info.value)
    assert message.startswith(f"{variable}: ")
    assert fragment in message
    assert "\n" not in message


def test_secret_values_do_not_leak_into_errors_or_repr():
    with pytest.raises(ConfigError) as info:
        load_settings({"JWT_SECRET": "tooshort-secret"})
    assert "tooshort-secret" not in str(info.value)
    s = load_settings({"JWT_SECRET": SECRET, "SMTP_PASSWORD": "hunter2hunter2"})
    assert SECRET not in repr(s) and "hunter2hunter2" not in repr(s)


def test_missing_jwt_secret_is_refused_where_tokens_are_needed():
    with pytest.raises(ConfigError, match="JWT_SECRET: is not set"):
        load_settings({}).jwt_key()

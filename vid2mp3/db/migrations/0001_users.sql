-- 0001: user accounts and login throttling (issue 3).
-- Applied once by vid2mp3.db.migrate at deploy time and recorded in schema_migrations.

CREATE TABLE users (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Stored normalised (trimmed, lowercased) by the application; unique case-insensitively below.
    email         text        NOT NULL CHECK (char_length(email) BETWEEN 3 AND 320),
    -- An argon2id PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash); never a password.
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

-- Failed-login counters, one row per (scope, key); keys are SHA-256 digests of the normalised
-- email (scope 'account') or of the source address (scope 'ip'), so no address is kept in clear.
CREATE TABLE login_throttle (
    scope           text        NOT NULL CHECK (scope IN ('account', 'ip')),
    key             text        NOT NULL,
    failures        integer     NOT NULL CHECK (failures > 0),
    last_failure_at timestamptz NOT NULL,
    blocked_until   timestamptz,
    -- When the row can be forgotten (a window of quiet after the last failure or lockout).
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE INDEX login_throttle_expires_at_idx ON login_throttle (expires_at);

-- 0008: the public service (issue 13): retention, quotas, account lifecycle, signed webhooks.

-- Account lifecycle. Every token carries the version it was issued under (`ver`); changing the
-- password bumps it, so every token issued before is refused (the functions compare on each request).
ALTER TABLE users ADD COLUMN token_version integer NOT NULL DEFAULT 0;
-- The key of the HMAC-SHA256 signature of webhook deliveries (Vid2mp3-Signature); rotatable.
-- Two random UUIDs: 244 random bits, without the pgcrypto extension.
ALTER TABLE users ADD COLUMN webhook_secret text NOT NULL
    DEFAULT 'whsec_' || replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '');

-- Retention: a finished job (done or failed) expires RETENTION_HOURS after it finished; from then it
-- is 404 like a deleted one, and the scheduled function removes its files and its row. Jobs finished
-- before this migration get the default of 72 hours.
ALTER TABLE jobs ADD COLUMN expires_at timestamptz;
UPDATE jobs SET expires_at = finished_at + interval '72 hours' WHERE finished_at IS NOT NULL;
CREATE INDEX jobs_expires_idx ON jobs (expires_at) WHERE deleted_at IS NULL AND expires_at IS NOT NULL;
-- Set when convert removed the source video after committing the MP3 (KEEP_SOURCE off): its bytes
-- no longer count against the owner's storage quota.
ALTER TABLE jobs ADD COLUMN source_removed_at timestamptz;
-- Where to POST the job's outcome (signed webhook), as the client gave it.
ALTER TABLE jobs ADD COLUMN callback_url text CHECK (char_length(callback_url) <= 2048);

-- Quotas: a user's active jobs and unfinished uploads.
CREATE INDEX jobs_owner_active_idx ON jobs (owner_id)
    WHERE status IN ('queued', 'converting') AND deleted_at IS NULL;
CREATE INDEX uploads_owner_open_idx ON uploads (owner_id) WHERE finished_at IS NULL;

-- Sliding-window rate limits (uploads per user, registrations per source address): one row per
-- admitted event, kept for the window; `key` is a user id or a SHA-256 digest of an address.
CREATE TABLE rate_events (
    scope  text        NOT NULL,
    key    text        NOT NULL,
    at     timestamptz NOT NULL
);
CREATE INDEX rate_events_key_idx ON rate_events (scope, key, at);
CREATE INDEX rate_events_at_idx ON rate_events (at);

-- Webhook deliveries, one row per job and outcome (like notifications). The webhook function claims
-- the row (SELECT ... FOR UPDATE) while it POSTs, so a second delivery of the same message waits and
-- then finds it 'delivered'. A failed attempt that may be retried leaves it 'pending' with
-- `next_attempt_at`; the scheduled function republishes due ones (`republished_at` is its claim).
CREATE TABLE webhook_deliveries (
    job_id          uuid        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('completed', 'failed')),
    owner_id        uuid        NOT NULL,
    url             text        NOT NULL,
    event_id        text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'delivered', 'failed')),
    -- [{"at": iso, "status": http status or null, "error": text or null, "ms": duration}, ...]
    attempts        jsonb       NOT NULL DEFAULT '[]'::jsonb,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    republished_at  timestamptz,
    correlation_id  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    PRIMARY KEY (job_id, kind),
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_owner_idx ON webhook_deliveries (owner_id);

-- 0005: resumable (tus 1.0.0) uploads, a row per upload in progress (issue 9).
--
-- The bytes go straight into GridFS (bucket `videos`, object id = the upload id) as they arrive;
-- only full GridFS chunks are written there, and the bytes of a chunk not yet full wait in `carry`
-- for the next PATCH. `offset` and `carry` change together, in one conditional UPDATE, so the
-- stored chunks plus `carry` are always exactly the first `offset` bytes of the file.
--
-- A PATCH first takes the upload's write lease (`writer`, `writer_until`) with a conditional
-- UPDATE on the offset it was sent for: of two racing PATCHes only one can win, the other sees
-- 423 (locked) or 409 (the offset moved). The lease outlives the upload function's timeout, so a
-- killed writer's lease lapses and the next PATCH rewrites the chunks it may have left.
--
-- The finished upload becomes the job with the same id (jobs.id = uploads.id = the GridFS video
-- id), which makes finishing idempotent: a retried last PATCH finds the job already there.

CREATE TABLE uploads (
    id              uuid        PRIMARY KEY,
    owner_id        uuid        NOT NULL,
    owner_email     text        NOT NULL,
    length          bigint      NOT NULL CHECK (length > 0),
    "offset"        bigint      NOT NULL DEFAULT 0,
    carry           bytea       NOT NULL DEFAULT ''::bytea,
    -- The Upload-Metadata header as the client sent it (HEAD returns it), and what it said.
    metadata        text        NOT NULL DEFAULT '',
    filename        text        NOT NULL,
    content_type    text        NOT NULL,
    bitrate         text        NOT NULL,
    options         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    correlation_id  text        NOT NULL,
    writer          uuid,
    writer_until    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    CONSTRAINT uploads_offset_in_range CHECK ("offset" >= 0 AND "offset" <= length),
    CONSTRAINT uploads_carry_fits CHECK (octet_length(carry) <= "offset"),
    CONSTRAINT uploads_finished_whole CHECK (finished_at IS NULL OR "offset" = length)
);

-- The scheduled sweep: uploads past their expiry, oldest first.
CREATE INDEX uploads_expires_idx ON uploads (expires_at);

-- A job made from a resumable upload has no SHA-256 of the whole file: the bytes arrive in
-- separate requests (each checked by the tus checksum extension) and no request sees them all.
ALTER TABLE jobs ALTER COLUMN sha256 DROP NOT NULL;

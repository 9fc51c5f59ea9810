-- 0002: conversion jobs, one row per uploaded video (issue 4).
-- Applied once by vid2mp3.db.migrate at deploy time and recorded in schema_migrations.
--
-- Status moves only forward: queued -> converting -> done | failed (a redelivered message may
-- re-enter converting). Every transition is one conditional UPDATE ... WHERE status IN (...)
-- RETURNING, so duplicate deliveries of the same message cannot both win (vid2mp3.jobs.postgres).

CREATE TABLE jobs (
    id               uuid        PRIMARY KEY,
    -- The user id from the authorizer's context. No foreign key: jobs are written by the upload
    -- function from a verified token and must not fail on a user row read elsewhere.
    owner_id         uuid        NOT NULL,
    owner_email      text        NOT NULL,
    -- The original name as uploaded (used for the download's Content-Disposition).
    filename         text        NOT NULL,
    content_type     text        NOT NULL,
    size             bigint      NOT NULL CHECK (size > 0),
    sha256           text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    -- GridFS id of the video in the `videos` bucket.
    video_id         text        NOT NULL,
    bitrate          text        NOT NULL,
    -- The source's duration as probed at upload.
    duration_s       double precision,
    status           text        NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'converting', 'done', 'failed')),
    progress         smallint    NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    error_code       text,
    error_message    text,
    -- GridFS id of the MP3 in the `mp3s` bucket and its facts, once done.
    mp3_id           text,
    mp3_size         bigint,
    mp3_duration_s   double precision,
    mp3_bitrate      text,
    correlation_id   text        NOT NULL,
    -- Facts about the source kept for the converter (probed container, audio codec, ...).
    extra            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    -- NULL until the broker confirmed the conversion message; the re-drive looks for these.
    published_at     timestamptz,
    -- Re-drive bookkeeping: how often the message was (re)published and when it last tried.
    publish_attempts integer     NOT NULL DEFAULT 0,
    publish_attempted_at timestamptz,
    started_at       timestamptz,
    finished_at      timestamptz,
    -- Set by DELETE before the objects are removed; the row goes once they are. A deleted job is
    -- invisible to every read and refuses every transition, so a conversion racing the delete
    -- learns it lost (mark_done returns false) and removes its own output.
    deleted_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT jobs_done_has_mp3 CHECK (status <> 'done' OR (mp3_id IS NOT NULL AND mp3_size IS NOT NULL)),
    CONSTRAINT jobs_failed_has_error CHECK (status <> 'failed' OR error_code IS NOT NULL)
);

-- GET /videos: the caller's jobs, newest first, keyset-paginated on (created_at, id).
CREATE INDEX jobs_owner_created_idx ON jobs (owner_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
-- The re-drive: queued jobs whose message was never confirmed.
CREATE INDEX jobs_unpublished_idx ON jobs (created_at)
    WHERE published_at IS NULL AND status = 'queued' AND deleted_at IS NULL;
-- The re-drive also finishes deletes that were interrupted between the row and the objects.
CREATE INDEX jobs_deleted_idx ON jobs (deleted_at) WHERE deleted_at IS NOT NULL;

-- Conversion jobs: one row per uploaded video.
CREATE TABLE jobs (
    id              uuid PRIMARY KEY,
    owner_id        uuid NOT NULL,
    owner_email     text NOT NULL,
    filename        text NOT NULL,
    content_type    text NOT NULL,
    size            bigint NOT NULL CHECK (size > 0),
    sha256          text NOT NULL,
    video_id        text NOT NULL,
    bitrate         text NOT NULL,
    duration_s      double precision,
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'converting', 'done', 'failed')),
    progress        smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    error_code      text,
    error_message   text,
    mp3_id          text,
    mp3_size        bigint,
    mp3_duration_s  double precision,
    mp3_bitrate     text,
    correlation_id  text NOT NULL,
    -- NULL until the broker confirmed the conversion message; the re-drive looks for these.
    published_at    timestamptz,
    publish_attempts integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- GET /videos: the caller's jobs, newest first, keyset-paginated on (created_at, id).
CREATE INDEX jobs_owner_created_idx ON jobs (owner_id, created_at DESC, id DESC);
-- The re-drive: queued jobs whose message was never confirmed.
CREATE INDEX jobs_unpublished_idx ON jobs (created_at) WHERE published_at IS NULL AND status = 'queued';

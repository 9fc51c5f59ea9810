-- The completion/failure event of a finished job, tracked like the conversion message: NULL until
-- the broker confirmed it, so the re-drive can publish it again if convert could not.
ALTER TABLE jobs ADD COLUMN event_published_at timestamptz;
ALTER TABLE jobs ADD COLUMN event_attempted_at timestamptz;
UPDATE jobs SET event_published_at = finished_at WHERE status IN ('done', 'failed');
CREATE INDEX jobs_unpublished_event_idx ON jobs (finished_at)
    WHERE event_published_at IS NULL AND status IN ('done', 'failed');

-- 0003: the record of every notification email, one row per job and outcome (issue 6).
--
-- The notify function claims the row (INSERT ... ON CONFLICT DO NOTHING, then SELECT ... FOR UPDATE)
-- and holds that lock while it talks to the SMTP server, so a redelivered or concurrently delivered
-- message waits, then finds the row 'sent' or 'undeliverable' and sends nothing. 'pending' means not
-- sent yet: never tried, or the last attempt failed and the message is being retried.
--
-- No foreign key to jobs: the owner may delete the job while its email is on its way, and the record of
-- what was sent outlives the job.

CREATE TABLE notifications (
    job_id          uuid        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('completed', 'failed')),
    recipient       text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'sent', 'undeliverable')),
    -- Chosen when the row is created and reused by every attempt, so that the rare duplicate (the server
    -- accepted the message but the reply, or our commit, was lost) carries the same Message-ID and mail
    -- clients can fold the two into one.
    message_id      text        NOT NULL,
    correlation_id  text,
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- The last failure (transient or final), for whoever looks into a message that did not arrive.
    last_error      text,
    smtp_code       integer,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    PRIMARY KEY (job_id, kind),
    CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);

-- Looking for what did not go out: pending rows that have been failing, undeliverable addresses.
CREATE INDEX notifications_unsent_idx ON notifications (updated_at) WHERE status <> 'sent';

-- Media to delete at the VOD provider after an admin deleted its video (app.catalog.deletions).
-- A row is written in the same transaction as the video's soft delete and worked off by a
-- periodic job with exponential backoff; the video row stays until the provider confirmed.
--   status   pending: still to do (next try at next_attempt_at); done: the provider deleted
--            it, did not know it, or another live video still uses it (outcome says which);
--            failed: max attempts reached, waiting for an operator.
CREATE TABLE vod_deletions (
    id               bigserial PRIMARY KEY,
    video_id         bigint REFERENCES videos (id) ON DELETE SET NULL,
    provider         text NOT NULL,
    media_id         text NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'done', 'failed')),
    outcome          text CHECK (outcome IN ('deleted', 'unknown_media', 'in_use')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    done_at          timestamptz,
    CONSTRAINT vod_deletions_media_key UNIQUE (provider, media_id)
);
CREATE INDEX vod_deletions_due_idx ON vod_deletions (next_attempt_at) WHERE status = 'pending';

-- migrate:down
-- lint:allow-destructive
DROP TABLE vod_deletions;

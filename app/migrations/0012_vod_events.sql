-- Provider callbacks already applied; the unique key makes replays no-ops.
CREATE TABLE vod_events (
    id          bigserial PRIMARY KEY,
    provider    text NOT NULL,
    event_id    text NOT NULL,
    event_type  text NOT NULL,
    media_id    text NOT NULL DEFAULT '',
    video_id    bigint REFERENCES videos (id) ON DELETE SET NULL,
    payload     jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT vod_events_provider_event_key UNIQUE (provider, event_id)
);

-- migrate:down
-- lint:allow-destructive
DROP TABLE vod_events;

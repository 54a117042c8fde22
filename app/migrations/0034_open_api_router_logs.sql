-- One row per open API call, partitioned by month. Partitions are created ahead
-- and dropped after the retention period by app.open_api.partitions; the
-- DEFAULT partition catches rows whose month has no partition yet.
CREATE TABLE router_logs (
    id                 bigserial,
    request_id         text NOT NULL,
    user_id            bigint NOT NULL,
    token_id           bigint,
    path               text NOT NULL,
    ability            text NOT NULL,
    channel_id         bigint,
    failed_channel_ids bigint[],
    status_code        integer NOT NULL,
    error_code         text,
    latency_ms         integer NOT NULL DEFAULT 0,
    units              integer NOT NULL DEFAULT 1,
    cost               bigint NOT NULL DEFAULT 0,
    client_ip          text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    -- (created_at, id): unique, and the index behind "all calls, newest first".
    PRIMARY KEY (created_at, id)
) PARTITION BY RANGE (created_at);

-- Keyset listing per user and per channel. Only these two plus the primary key:
-- every index costs COPY throughput (5 indexes halve it). request_id is unique per
-- charged call through quota_deductions' primary key; a partitioned table can only
-- enforce uniqueness together with the partition key.
CREATE INDEX router_logs_user_created_idx ON router_logs (user_id, created_at DESC, id DESC);
CREATE INDEX router_logs_channel_created_idx ON router_logs (channel_id, created_at, id);

CREATE TABLE router_logs_default PARTITION OF router_logs DEFAULT;

-- The current month (UTC) and the next two, bounds at UTC midnight; the partition job keeps this window moving.
DO $$
DECLARE
    m date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    i int;
    lo date;
    hi date;
BEGIN
    FOR i IN 0..2 LOOP
        lo := (m + make_interval(months => i))::date;
        hi := (m + make_interval(months => i + 1))::date;
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF router_logs FOR VALUES FROM (%L) TO (%L)',
            'router_logs_' || to_char(lo, 'YYYYMM'),
            lo::timestamp AT TIME ZONE 'UTC', hi::timestamp AT TIME ZONE 'UTC');
    END LOOP;
END $$;

-- migrate:down
DROP TABLE router_logs;

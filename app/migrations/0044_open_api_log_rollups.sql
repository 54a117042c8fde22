-- Logs at scale (issue 19 item 4).
--
-- 1. router_logs loses its DEFAULT partition: PostgreSQL refuses DETACH PARTITION
--    ... CONCURRENTLY while one exists, and retention must not take an ACCESS
--    EXCLUSIVE lock that queues every reader behind a long log query. A row whose
--    month has no partition yet makes the log writer create that month's partition
--    and write again (app.open_api.logs); the partition job keeps months ahead.
-- 2. router_log_usage: usage per user, 15-minute slot (UTC), token and ability,
--    maintained by a statement trigger on every insert into router_logs (the log
--    writer's COPY, crash recovery's INSERT), in the inserting transaction: usage
--    reports read O(slots), never raw rows. 15 minutes because every time zone's
--    offset is a multiple of it, so a local day is a whole number of slots.
--    Citus: user_id leads every key (the shard key of both tables, docs/operations.md).

-- 1. Rows that sit in the default partition move into monthly partitions of their own.
LOCK TABLE router_logs IN ACCESS EXCLUSIVE MODE;
CREATE TEMPORARY TABLE router_logs_moving ON COMMIT DROP AS SELECT * FROM router_logs_default;
ALTER TABLE router_logs DETACH PARTITION router_logs_default;
-- Its rows were copied into router_logs_moving above and go back in below.
-- lint:allow-destructive
DROP TABLE router_logs_default;
DO $$
DECLARE
    m date;
BEGIN
    FOR m IN SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC')::date
             FROM router_logs_moving LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF router_logs FOR VALUES FROM (%L) TO (%L)',
            'router_logs_' || to_char(m, 'YYYYMM'),
            m::timestamp AT TIME ZONE 'UTC',
            (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
    END LOOP;
END $$;
INSERT INTO router_logs SELECT * FROM router_logs_moving;

-- 2. The rollup, its trigger, then the rows already logged (the trigger's lock keeps
-- writers out until this commits, so no row is counted twice or missed).
CREATE TABLE router_log_usage (
    user_id   bigint NOT NULL,
    bucket    timestamptz NOT NULL,         -- start of a 15-minute slot
    token_id  bigint NOT NULL DEFAULT 0,    -- 0: calls that carried no token
    ability   text NOT NULL,
    calls     bigint NOT NULL,
    succeeded bigint NOT NULL,              -- status < 400
    cost      bigint NOT NULL,              -- nano-units
    PRIMARY KEY (user_id, bucket, token_id, ability)
);
CREATE INDEX router_log_usage_bucket_idx ON router_log_usage (bucket);

CREATE FUNCTION router_logs_roll_up() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Sorted, so two writers upserting the same slots lock them in the same order.
    INSERT INTO router_log_usage AS u
        (user_id, bucket, token_id, ability, calls, succeeded, cost)
    SELECT user_id,
           date_bin('15 minutes', created_at, timestamptz '2000-01-01 00:00:00+00'),
           coalesce(token_id, 0), ability, count(*),
           count(*) FILTER (WHERE status_code < 400), coalesce(sum(cost), 0)
    FROM new_rows
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (user_id, bucket, token_id, ability) DO UPDATE
    SET calls = u.calls + excluded.calls,
        succeeded = u.succeeded + excluded.succeeded,
        cost = u.cost + excluded.cost;
    RETURN NULL;
END $$;

CREATE TRIGGER router_logs_roll_up AFTER INSERT ON router_logs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION router_logs_roll_up();

INSERT INTO router_log_usage (user_id, bucket, token_id, ability, calls, succeeded, cost)
SELECT user_id,
       date_bin('15 minutes', created_at, timestamptz '2000-01-01 00:00:00+00'),
       coalesce(token_id, 0), ability, count(*),
       count(*) FILTER (WHERE status_code < 400), coalesce(sum(cost), 0)
FROM router_logs
GROUP BY 1, 2, 3, 4;

-- migrate:down
DROP TRIGGER router_logs_roll_up ON router_logs;
DROP FUNCTION router_logs_roll_up();
DROP TABLE router_log_usage;
CREATE TABLE router_logs_default PARTITION OF router_logs DEFAULT;

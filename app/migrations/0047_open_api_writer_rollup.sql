-- Usage rollup off the write path (issue 19 item 4): a job catches it up, by id.
--
-- 0044's statement trigger made every insert into router_logs aggregate its rows
-- into router_log_usage in the inserting transaction: the log writer lost 10 to 39 %
-- of its rate. Now nothing is counted on insert. open_api_rollup_catch_up() adds
-- the rows whose id lies past router_log_rollup_state.last_id (Citus's incremental
-- rollup): a periodic job calls it (open_api.rollup_interval_seconds), and so does
-- every usage report before it reads, so a report counts every committed call.
--
-- Ids come from one sequence, but commit in any order: a writer may still commit
-- id 5 after id 6 is visible. So the function takes window_end, the last id handed
-- out, then waits for every transaction that holds a write lock on router_logs (any
-- id <= window_end was taken under one) by asking for a lock that conflicts with
-- theirs and letting it go at once. The wait is bounded by lock_wait (partition DDL
-- ahead in the queue): then it returns NULL and counts nothing; the next run does.
-- This needs router_logs_id_seq's CACHE of 1 (its default): a session holding cached
-- ids could insert one below window_end after the wait.
--
-- The BRIN index on id finds the rows past last_id without reading the table: new
-- rows sit in the last pages of each partition (not yet summarised, so always read),
-- and a BRIN entry costs the writer next to nothing. No btree on id: every btree
-- costs the COPY rate (0034).
-- lint:ignore index-without-concurrently

-- Every writer that counted through the trigger has committed once this lock is ours;
-- the rows up to the sequence's last value are in the rollup (0044), later ones are not.
LOCK TABLE router_logs IN EXCLUSIVE MODE;
DROP TRIGGER router_logs_roll_up ON router_logs;
DROP FUNCTION router_logs_roll_up();

CREATE INDEX router_logs_id_brin ON router_logs USING brin (id);

CREATE TABLE router_log_rollup_state (
    id      integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),  -- a single row (as in 0035)
    last_id bigint NOT NULL  -- every router_logs row with id <= last_id is counted
);
INSERT INTO router_log_rollup_state (last_id)
SELECT coalesce(pg_sequence_last_value('router_logs_id_seq'), 0);

CREATE FUNCTION open_api_rollup_catch_up(lock_wait interval DEFAULT '1 second')
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    window_start bigint;
    window_end   bigint;
    counted      bigint;
BEGIN
    -- One runner at a time; a second one waits, then finds the work done.
    SELECT last_id INTO window_start FROM router_log_rollup_state FOR UPDATE;
    window_end := coalesce(pg_sequence_last_value('router_logs_id_seq'), 0);
    IF window_end <= window_start THEN
        RETURN 0;
    END IF;
    -- Wait for the writers that may still commit an id <= window_end. The lock and the
    -- lock_timeout end with the sub-block (rolled back); new writers queue behind the
    -- request only while it waits.
    BEGIN
        PERFORM set_config('lock_timeout', (extract(epoch FROM lock_wait) * 1000)::bigint::text, true);
        LOCK TABLE router_logs IN SHARE ROW EXCLUSIVE MODE;
        RAISE SQLSTATE 'LUR01';
    EXCEPTION
        WHEN SQLSTATE 'LUR01' THEN NULL;  -- every such writer has ended
        WHEN lock_not_available THEN RETURN NULL;
    END;
    -- Sorted, so two transactions adding to the same rows lock them in the same order.
    INSERT INTO router_log_usage AS u
        (user_id, bucket, token_id, ability, calls, succeeded, cost)
    SELECT user_id,
           date_bin('15 minutes', created_at, timestamptz '2000-01-01 00:00:00+00'),
           coalesce(token_id, 0), ability, count(*),
           count(*) FILTER (WHERE status_code < 400), coalesce(sum(cost), 0)
    FROM router_logs
    WHERE id > window_start AND id <= window_end
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (user_id, bucket, token_id, ability) DO UPDATE
    SET calls = u.calls + excluded.calls,
        succeeded = u.succeeded + excluded.succeeded,
        cost = u.cost + excluded.cost;
    GET DIAGNOSTICS counted = ROW_COUNT;
    UPDATE router_log_rollup_state SET last_id = window_end;
    RETURN counted;
END $$;
COMMENT ON FUNCTION open_api_rollup_catch_up(interval) IS
    'Adds the router_logs rows past router_log_rollup_state.last_id to router_log_usage '
    '(app.open_api.rollup); NULL when writers held router_logs longer than lock_wait.';

-- migrate:down
DROP FUNCTION open_api_rollup_catch_up(interval);
DROP TABLE router_log_rollup_state;
DROP INDEX router_logs_id_brin;
CREATE FUNCTION router_logs_roll_up() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
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

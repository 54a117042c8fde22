-- quota_deductions partitioned by month and pruned by partition (issue 19 item 4,
-- docs/operations.md "Partitioning quota_deductions").
--
-- A partitioned table enforces a unique key only when it contains the partition
-- column, so the key becomes (request_id, created_at). That key alone would let a
-- client's retry after a month boundary be charged twice (its new row lands in a new
-- partition), so exactly-once moves into open_api_charge(), one call per charge:
--   1. pg_advisory_xact_lock(hashtextextended(request_id, 0)): attempts of one
--      request id run one after the other;
--   2. a lookup of the request id over every partition, in a statement of its own,
--      so its snapshot is taken after the lock and sees the commit it waited for;
--   3. only when nothing is found: the insert, then the conditional wallet and token
--      updates, refused with LU402 / LU429 (open_api_refuse) as before.
-- The key leads with request_id, so step 2 is one index probe per partition, and the
-- table stays distributable by request_id on Citus.
--
-- There is no DEFAULT partition (DETACH ... CONCURRENTLY refuses to run while one
-- exists): a charge that meets a month without a partition creates it and charges
-- again (app.open_api.quota), and the partition job keeps months ahead and detaches
-- and drops the months past log_retention_months (app.open_api.partitions).
--
-- The rows move under an ACCESS EXCLUSIVE lock: charges wait while they are copied
-- (moments for a table pruned to log_retention_months).
-- lint:allow-destructive

LOCK TABLE quota_deductions IN ACCESS EXCLUSIVE MODE;
ALTER TABLE quota_deductions RENAME TO quota_deductions_unpartitioned;
ALTER TABLE quota_deductions_unpartitioned
    RENAME CONSTRAINT quota_deductions_pkey TO quota_deductions_unpartitioned_pkey;
ALTER TABLE quota_deductions_unpartitioned
    RENAME CONSTRAINT quota_deductions_amount_check TO quota_deductions_unpartitioned_amount_check;
ALTER INDEX quota_deductions_created_idx RENAME TO quota_deductions_unpartitioned_created_idx;

CREATE TABLE quota_deductions (
    request_id      text NOT NULL,
    user_id         bigint NOT NULL,
    token_id        bigint NOT NULL,
    amount          bigint NOT NULL CHECK (amount >= 0),
    refunded_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempt         text,
    fingerprint     bytea,
    keyed           boolean NOT NULL DEFAULT false,
    ability         text,
    path            text,
    log_request_id  text,
    outcome_status  integer,
    outcome_code    text,
    outcome_message text,
    outcome_body    json,
    finished_at     timestamptz,
    PRIMARY KEY (request_id, created_at)
) PARTITION BY RANGE (created_at);
-- Crash recovery scans by time.
CREATE INDEX quota_deductions_created_idx ON quota_deductions (created_at);

-- Every month that holds rows, this month and the next two (UTC); the partition job
-- drops the ones past retention and keeps partitions_ahead_months ahead.
DO $$
DECLARE
    m date;
BEGIN
    FOR m IN
        SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC')::date
        FROM quota_deductions_unpartitioned
        UNION
        SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => i))::date
        FROM generate_series(0, 2) i
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF quota_deductions FOR VALUES FROM (%L) TO (%L)',
            'quota_deductions_' || to_char(m, 'YYYYMM'),
            m::timestamp AT TIME ZONE 'UTC',
            (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
    END LOOP;
END $$;

INSERT INTO quota_deductions
    (request_id, user_id, token_id, amount, refunded_at, created_at, attempt, fingerprint,
     keyed, ability, path, log_request_id, outcome_status, outcome_code, outcome_message,
     outcome_body, finished_at)
SELECT request_id, user_id, token_id, amount, refunded_at, created_at, attempt, fingerprint,
       keyed, ability, path, log_request_id, outcome_status, outcome_code, outcome_message,
       outcome_body, finished_at
FROM quota_deductions_unpartitioned;
DROP TABLE quota_deductions_unpartitioned;

-- One charge: VOLATILE, so each statement below takes a new snapshot (READ
-- COMMITTED); one call, so one round trip and one transaction. 'exists' returns the
-- row found, and the caller decides between its own commit, a replay and a reused key.
CREATE FUNCTION open_api_charge(
    p_request_id text, p_user_id bigint, p_token_id bigint, p_amount bigint, p_sync text,
    p_attempt text, p_fingerprint bytea, p_keyed boolean, p_ability text, p_path text,
    p_log_request_id text
) RETURNS TABLE (
    outcome text, balance bigint, used_quota bigint, user_id bigint, token_id bigint,
    amount bigint, attempt text, fingerprint bytea, outcome_status integer,
    outcome_code text, outcome_message text, outcome_body json
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    found_row quota_deductions%ROWTYPE;
    new_balance bigint;
    new_used bigint;
BEGIN
    PERFORM set_config('synchronous_commit', p_sync, true);
    -- 1. Attempts of one request id wait here for each other (transaction-scoped,
    -- taken before any row lock, so it cannot deadlock with them).
    PERFORM pg_advisory_xact_lock(hashtextextended(p_request_id, 0));
    -- 2. A new snapshot, taken after the lock: an attempt we waited for is visible,
    -- in whichever month's partition it was charged.
    SELECT d.* INTO found_row FROM quota_deductions d WHERE d.request_id = p_request_id LIMIT 1;
    IF FOUND THEN
        RETURN QUERY SELECT 'exists'::text, NULL::bigint, NULL::bigint, found_row.user_id,
            found_row.token_id, found_row.amount, found_row.attempt, found_row.fingerprint,
            found_row.outcome_status, found_row.outcome_code, found_row.outcome_message,
            found_row.outcome_body;
        RETURN;
    END IF;
    -- 3. The charge: the refusals roll the insert back with the whole transaction.
    INSERT INTO quota_deductions
        (request_id, user_id, token_id, amount, attempt, fingerprint, keyed, ability, path,
         log_request_id)
    VALUES (p_request_id, p_user_id, p_token_id, p_amount, p_attempt, p_fingerprint, p_keyed,
            p_ability, p_path, p_log_request_id);
    UPDATE users SET balance = balance - p_amount
    WHERE id = p_user_id AND status = 'active' AND balance >= p_amount
    RETURNING balance INTO new_balance;
    IF NOT FOUND THEN
        PERFORM open_api_refuse('LU402');
    END IF;
    UPDATE api_tokens SET used_quota = used_quota + p_amount
    WHERE id = p_token_id AND user_id = p_user_id AND status = 'enabled'
      AND (expired_time IS NULL OR expired_time > now())
      AND (quota_limit < 0 OR used_quota + p_amount <= quota_limit)
    RETURNING used_quota INTO new_used;
    IF NOT FOUND THEN
        PERFORM open_api_refuse('LU429');
    END IF;
    RETURN QUERY SELECT 'charged'::text, new_balance, new_used, p_user_id, p_token_id,
        p_amount, p_attempt, p_fingerprint, NULL::integer, NULL::text, NULL::text, NULL::json;
END $$;

-- migrate:down
DROP FUNCTION open_api_charge(text, bigint, bigint, bigint, text, text, bytea, boolean, text,
                              text, text);
LOCK TABLE quota_deductions IN ACCESS EXCLUSIVE MODE;
ALTER TABLE quota_deductions RENAME TO quota_deductions_partitioned;
ALTER TABLE quota_deductions_partitioned
    RENAME CONSTRAINT quota_deductions_pkey TO quota_deductions_partitioned_pkey;
ALTER TABLE quota_deductions_partitioned
    RENAME CONSTRAINT quota_deductions_amount_check TO quota_deductions_partitioned_amount_check;
ALTER INDEX quota_deductions_created_idx RENAME TO quota_deductions_partitioned_created_idx;
CREATE TABLE quota_deductions (
    request_id      text PRIMARY KEY,
    user_id         bigint NOT NULL,
    token_id        bigint NOT NULL,
    amount          bigint NOT NULL CHECK (amount >= 0),
    refunded_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempt         text,
    fingerprint     bytea,
    keyed           boolean NOT NULL DEFAULT false,
    ability         text,
    path            text,
    log_request_id  text,
    outcome_status  integer,
    outcome_code    text,
    outcome_message text,
    outcome_body    json,
    finished_at     timestamptz
);
CREATE INDEX quota_deductions_created_idx ON quota_deductions (created_at);
INSERT INTO quota_deductions SELECT
    request_id, user_id, token_id, amount, refunded_at, created_at, attempt, fingerprint,
    keyed, ability, path, log_request_id, outcome_status, outcome_code, outcome_message,
    outcome_body, finished_at
FROM quota_deductions_partitioned;
DROP TABLE quota_deductions_partitioned;

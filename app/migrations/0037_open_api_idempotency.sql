-- Idempotency and crash recovery for open API charges (app.open_api.quota, .recovery).
--
-- quota_deductions grows:
--   attempt      the nonce of the call attempt that inserted the row: a retry of the
--                same attempt after a lost reply recognises its own committed charge;
--   fingerprint  sha256 of (method, path, canonical parameters) the key was first used
--                with: the same Idempotency-Key on another request is refused;
--   keyed        the call carried an Idempotency-Key, so its outcome is stored;
--   outcome_*    the stored outcome of a keyed call (HTTP status, error code/message,
--                or the response data) that replays return without new work;
--   ability, path, log_request_id  what a lost log row is rebuilt from.
-- Crash recovery scans by created_at (quota_deductions_created_idx): no new index.
-- router_logs.deduction_id names the deduction a row accounts for (only on the row
-- of the attempt that charged), so rows lost to a hard kill can be found.
ALTER TABLE quota_deductions
    ADD COLUMN attempt         text,
    ADD COLUMN fingerprint     bytea,
    ADD COLUMN keyed           boolean NOT NULL DEFAULT false,
    ADD COLUMN ability         text,
    ADD COLUMN path            text,
    ADD COLUMN log_request_id  text,
    ADD COLUMN outcome_status  integer,
    ADD COLUMN outcome_code    text,
    ADD COLUMN outcome_message text,
    ADD COLUMN outcome_body    json,  -- json, not jsonb: the exact text the caller got
    ADD COLUMN finished_at     timestamptz;

ALTER TABLE router_logs ADD COLUMN deduction_id text;

-- migrate:down
ALTER TABLE router_logs DROP COLUMN deduction_id;
ALTER TABLE quota_deductions
    DROP COLUMN attempt,
    DROP COLUMN fingerprint,
    DROP COLUMN keyed,
    DROP COLUMN ability,
    DROP COLUMN path,
    DROP COLUMN log_request_id,
    DROP COLUMN outcome_status,
    DROP COLUMN outcome_code,
    DROP COLUMN outcome_message,
    DROP COLUMN outcome_body,
    DROP COLUMN finished_at;

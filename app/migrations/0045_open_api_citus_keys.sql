-- Citus-compatible keys for the log tables (issue 19 item 4, docs/operations.md).
--
-- Citus enforces a primary or unique key only when it contains the distribution
-- column, and the plan distributes router_logs and router_log_usage by user_id.
-- router_log_usage's key already leads with user_id (0044). router_logs' key
-- becomes (user_id, created_at, id): it also serves a partner's log pages newest
-- first (a backward scan), so it replaces router_logs_user_created_idx, and a plain
-- (created_at, id) index keeps "all calls, newest first" and crash recovery's scan
-- by time. Three indexes before and after: the COPY throughput does not change.
--
-- PostgreSQL cannot build an index on a partitioned table CONCURRENTLY, so this
-- holds router_logs' lock while the indexes build. The log writer's queue absorbs
-- the pause; on a table of billions of rows, apply it
-- in a maintenance window (docs/operations.md).
-- lint:ignore index-without-concurrently

ALTER TABLE router_logs DROP CONSTRAINT router_logs_pkey;
ALTER TABLE router_logs ADD PRIMARY KEY (user_id, created_at, id);
DROP INDEX router_logs_user_created_idx;
CREATE INDEX router_logs_created_idx ON router_logs (created_at, id);

-- migrate:down
DROP INDEX router_logs_created_idx;
CREATE INDEX router_logs_user_created_idx ON router_logs (user_id, created_at DESC, id DESC);
ALTER TABLE router_logs DROP CONSTRAINT router_logs_pkey;
ALTER TABLE router_logs ADD PRIMARY KEY (created_at, id);

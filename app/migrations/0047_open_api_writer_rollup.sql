-- The log writer adds its own rows to router_log_usage (issue 19 item 4).
--
-- The statement trigger of 0044 made every COPY batch keep a transition table of
-- its rows and aggregate it in SQL: the writer lost 7-40 % of its rate. Now the
-- writer (app.open_api.logs) copies each batch straight into its months'
-- partitions, which does not fire the parent's statement trigger, and in the same
-- transaction upserts the batch's groups, summed in Python (app.open_api.rollup),
-- with one INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE.
--
-- The trigger stays for every other insert into router_logs itself (crash
-- recovery's INSERT, an operator's): those rows are counted as before.
--
-- A rollup row is updated by every batch that has a call of its key while its
-- 15-minute slot lasts (hundreds of times for a busy partner). Full pages cannot
-- keep the new row version beside the old one, so every update also inserted into
-- both indexes; with half of each new page free the updates stay HOT (heap-only)
-- and the upsert takes about half the time (docs/benchmarks.md "Logs at scale").
-- Pages written before this keep their fill; the space costs disk, not report time
-- (a report reads a few thousand rollup rows).
ALTER TABLE router_log_usage SET (fillfactor = 50);

COMMENT ON TRIGGER router_logs_roll_up ON router_logs IS
    'Counts rows inserted into router_logs itself (crash recovery, operators). The log '
    'writer copies into the partitions, which skips this trigger, and upserts its '
    'batches'' usage in the same transaction (app.open_api.rollup).';

-- migrate:down
ALTER TABLE router_log_usage RESET (fillfactor);
COMMENT ON TRIGGER router_logs_roll_up ON router_logs IS NULL;

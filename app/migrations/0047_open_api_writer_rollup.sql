-- The log writer adds its own rows to router_log_usage (issue 19 item 4).
--
-- The statement trigger of 0044 made every COPY batch keep a transition table of
-- its rows and aggregate it in SQL: the writer lost 7 to 39 % of its rate. Now the
-- writer (app.open_api.logs) copies each batch straight into its months'
-- partitions, which does not fire the parent's statement trigger, and in the same
-- transaction upserts the batch's groups, summed in Python (app.open_api.rollup),
-- with one INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE.
--
-- The trigger stays for every other insert into router_logs itself (crash
-- recovery's INSERT, an operator's): those rows are counted as before.
--
-- Nothing in the schema changes: the trigger says who counts what.
COMMENT ON TRIGGER router_logs_roll_up ON router_logs IS
    'Counts rows inserted into router_logs itself (crash recovery, operators). The log '
    'writer copies into the partitions, which skips this trigger, and upserts its '
    'batches'' usage in the same transaction (app.open_api.rollup).';

-- migrate:down
COMMENT ON TRIGGER router_logs_roll_up ON router_logs IS NULL;

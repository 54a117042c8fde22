"""Request logs at scale: the log writer with the rollup off its path, the rollup's
catch-up, usage reports at 10 M rows.

    python benchmarks/bench_log_scale.py --dsn postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/bench_log_scale.py --quick        # small counts, a sanity run

Creates a scratch database on the server named by ``--dsn`` (without it: the
embedded PostgreSQL), applies the migrations, runs two workloads and drops the
database:

1. log writer rows/s through ``LogWriter`` (binary COPY batches into router_logs)
   in alternating rounds of the same run, the tables emptied between rounds, on
   the schema of each mode: ``off``, no rollup maintained (router_logs before
   migration 0044: no trigger, no index on id); ``on``, the schema of migration
   0047 (the BRIN index on id the catch-up scans; nothing counted on insert; each
   round is then caught up and checked to count every row once); ``btree``, a
   btree on id instead of the BRIN (what 0047 did not choose); ``trigger``, 0044's
   statement trigger (the rollup maintained in the writer's transaction).
2. usage at ``--rows`` router_logs rows (10 M): the rows are made by the server
   (``generate_series``) and streamed back in with ``COPY ... FROM STDIN`` (two
   ``psql`` processes joined by a pipe), then counted by one catch-up (timed).
   1,000 partners over ``--days`` days; one big partner makes a fifth of the
   calls. Then ``daily_usage`` (a catch-up with nothing new, then the rollup) for
   the big partner's last 30 days against the same report aggregated from the raw
   rows (checked to agree), and the first page of that partner's logs. Last, the
   catch-up of ``--catch-up-rows`` new rows each (written by the log writer) on top
   of the loaded table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import luser_db  # noqa: E402
from app.open_api.logs import (  # noqa: E402
    LOG_COLUMNS,
    LogFilter,
    LogRow,
    LogWriter,
    daily_usage,
    query_logs,
)
from app.open_api.partitions import add_months, ensure_partitions, month_start  # noqa: E402
from app.open_api.rollup import catch_up  # noqa: E402
from luser_db import Db  # noqa: E402
from luser_db.migrations import Migrator  # noqa: E402
from luser_db.testing import create_test_database, drop_test_database, server_url  # noqa: E402

BIG = 1  # the big partner's user id
ABILITIES = "ARRAY['video.play_url','video.upload','video.info','video.delete']"


def _row(user_id: int) -> LogRow:
    # The shape of benchmarks/bench_open_api.py's log rows, so the figures compare.
    return LogRow(
        uuid.uuid4().hex,
        user_id,
        1,
        "/open/v1/videos/1/play_url",
        "video.play_url",
        1,
        None,
        200,
        None,
        3,
        1,
        10_000_000,
        "10.0.0.1",
        datetime.now(UTC),
    )


_TRIGGER_SQL = """
CREATE FUNCTION router_logs_roll_up() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO router_log_usage AS u
        (user_id, bucket, token_id, ability, calls, succeeded, cost)
    SELECT user_id,
           date_bin('15 minutes', created_at, timestamptz '2000-01-01 00:00:00+00'),
           coalesce(token_id, 0), ability, count(*),
           count(*) FILTER (WHERE status_code < 400), coalesce(sum(cost), 0)
    FROM new_rows GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (user_id, bucket, token_id, ability) DO UPDATE
    SET calls = u.calls + excluded.calls, succeeded = u.succeeded + excluded.succeeded,
        cost = u.cost + excluded.cost;
    RETURN NULL;
END $$;
CREATE TRIGGER router_logs_roll_up AFTER INSERT ON router_logs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION router_logs_roll_up()
"""

# What each mode adds to the bare table (``off``: before migration 0044).
SCHEMAS: dict[str, str] = {
    "off": "",
    "on": "CREATE INDEX router_logs_id_brin ON router_logs USING brin (id)",  # 0047
    "btree": "CREATE INDEX router_logs_id_btree ON router_logs (id)",
    "trigger": _TRIGGER_SQL,  # 0044
}
_BARE = (
    "DROP TRIGGER IF EXISTS router_logs_roll_up ON router_logs; "
    "DROP FUNCTION IF EXISTS router_logs_roll_up(); "
    "DROP INDEX IF EXISTS router_logs_id_brin; DROP INDEX IF EXISTS router_logs_id_btree"
)


async def _schema(mode: str) -> None:
    await Db.execute("TRUNCATE router_logs, router_log_usage")
    await Db.execute(_BARE)
    if SCHEMAS[mode]:
        await Db.execute(SCHEMAS[mode])


async def _write(rows: int) -> float:
    batch = [_row(i % 1000) for i in range(rows)]
    writer = LogWriter(queue_size=rows + 1, batch_size=5_000, flush_interval=0.05)
    await writer.start()
    started = time.perf_counter()
    for row in batch:
        writer.insert_log(row)
    await writer.stop()
    assert writer.written == rows, (writer.written, writer.failed)
    return rows / (time.perf_counter() - started)


async def bench_writer(rows: int, rounds: int, modes: Sequence[str]) -> None:
    rates: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(rounds):
        for mode in modes:
            await _schema(mode)
            await Db.execute("CHECKPOINT")
            rates[mode].append(await _write(rows))
            if mode == "on":
                await catch_up()
            if mode in ("on", "trigger"):  # what the round wrote is counted, once
                usage = await Db.find("SELECT sum(calls)::bigint AS n FROM router_log_usage")
                assert usage[0]["n"] == rows, (mode, usage, rows)
    await _schema("on")  # the migrated schema again, for the usage phase
    off = statistics.median(rates["off"])
    for mode in modes:
        each = " ".join(f"{r:,.0f}" for r in rates[mode])
        median = statistics.median(rates[mode])
        print(
            f"log writer, {mode:>7}: median {median:>9,.0f} rows/s, {median / off:.2f} x off "
            f"(rounds: {each}; {rows:,} rows each)"
        )
    if "on" in rates:
        pairs = zip(rates["on"], rates["off"], strict=True)
        per_round = " ".join(f"{on / o:.2f}" for on, o in pairs)
        print(f"  on / off per round: {per_round}")


def _generator_sql(lo: int, hi: int, total: int, start: datetime, span: timedelta) -> str:
    # Calls in time order; every 5th is the big partner's; ~2 % fail.
    step = span.total_seconds() / total
    return (
        "COPY (SELECT md5(g::text), "
        f"CASE WHEN g % 5 = 0 THEN {BIG} ELSE 2 + (g * 7919) % 999 END, "
        "1 + (g / 7) % 5, '/open/v1/videos/1/play_url', "
        f"({ABILITIES})[1 + g % 4], 1 + g % 3, NULL, "
        "CASE WHEN g % 50 = 0 THEN 502 ELSE 200 END, NULL, g % 100, 1, 10000000, "
        f"'10.0.0.1', timestamptz '{start.isoformat()}' + g * interval '{step} seconds', NULL "
        f"FROM generate_series({lo}::bigint, {hi - 1}) g) TO STDOUT"
    )


async def _pipe(url: str, sql: str) -> None:
    cols = ", ".join(LOG_COLUMNS)
    into = f"COPY router_logs ({cols}) FROM STDIN"
    psql = f'psql -X -q -v ON_ERROR_STOP=1 "{url}" -c'
    cmd = f'set -o pipefail; {psql} "{sql}" | {psql} "{into}"'
    proc = await asyncio.create_subprocess_exec("bash", "-c", cmd)
    if await proc.wait() != 0:
        raise RuntimeError(f"loading rows failed: {cmd}")


async def load(url: str, total: int, days: int, chunk: int, streams: int) -> datetime:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    months, m = [], month_start(start)
    while m <= month_start(end):
        months.append(datetime(m.year, m.month, 1, tzinfo=UTC))
        m = add_months(m, 1)
    await ensure_partitions(months)
    began = time.perf_counter()
    todo = iter(range(0, total, chunk))

    async def stream() -> None:
        for lo in todo:
            await _pipe(url, _generator_sql(lo, min(lo + chunk, total), total, start, end - start))

    await asyncio.gather(*(stream() for _ in range(streams)))
    took = time.perf_counter() - began
    counting = time.perf_counter()
    await catch_up()
    counted = time.perf_counter() - counting
    await Db.execute("VACUUM ANALYZE router_logs")
    await Db.execute("VACUUM ANALYZE router_log_usage")
    n_logs = await Db.find("SELECT count(*) AS n FROM router_logs")
    assert n_logs[0]["n"] == total, (n_logs, total)
    n_usage = await Db.find("SELECT count(*) AS n FROM router_log_usage")
    print(
        f"loaded {total:,} rows in {took:.0f} s ({total / took:,.0f} rows/s, "
        f"{streams} COPY streams); one catch-up counted them in {counted:.1f} s; "
        f"router_log_usage: {n_usage[0]['n']:,} rows"
    )
    return end


_RAW_SQL = """
SELECT (created_at AT TIME ZONE $3)::date AS day, ability, count(*)::bigint AS calls,
       count(*) FILTER (WHERE status_code < 400)::bigint AS succeeded,
       coalesce(sum(cost), 0)::bigint AS cost
FROM router_logs WHERE user_id = $4 AND created_at >= $1 AND created_at < $2
GROUP BY 1, 2 ORDER BY 1, 2
"""


async def _timed(fn: Callable[[], Awaitable[Any]], repeat: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await fn()
        times.append((time.perf_counter() - started) * 1000)
    return times, result


def _ms(times: list[float]) -> str:
    median = statistics.median(times)
    return f"median {median:8.1f} ms, min {min(times):8.1f} ms ({len(times)} runs)"


async def bench_usage(end: datetime, repeat: int, raw_repeat: int) -> None:
    since, until = end - timedelta(days=30), end
    calls = await Db.find(
        "SELECT count(*) AS n FROM router_logs WHERE user_id = $1 AND created_at >= $2 "
        "AND created_at < $3",
        BIG,
        since,
        until,
    )
    print(f"big partner, last 30 days: {calls[0]['n']:,} calls")
    for label, user in (("big partner", BIG), ("small partner", 500)):
        rollup_t, rollup = await _timed(
            lambda u=user: daily_usage(u, since, until, tz="Asia/Shanghai"), repeat
        )
        raw_t, raw = await _timed(
            lambda u=user: Db.find(_RAW_SQL, since, until, "Asia/Shanghai", u), raw_repeat
        )
        assert rollup == [dict(r) for r in raw], f"{label}: rollup and raw reports differ"
        print(f"usage, {label:<13}, rollup: {_ms(rollup_t)}  ({len(rollup)} day x ability rows)")
        print(f"usage, {label:<13}, raw   : {_ms(raw_t)}  (same report, checked equal)")
    page_t, _ = await _timed(lambda: query_logs(LogFilter(user_id=BIG), limit=50), repeat)
    print(f"log page, big partner, 50 newest: {_ms(page_t)}")


async def bench_catch_up(sizes: Sequence[int], repeat: int) -> None:
    """The catch-up of ``size`` rows the log writer just wrote, on top of the table."""
    for size in sizes:
        times = []
        for _ in range(repeat):
            await _write(size)
            started = time.perf_counter()
            added = await catch_up()
            times.append((time.perf_counter() - started) * 1000)
            assert added is not None and added > 0, added
        print(f"catch-up of {size:>7,} new rows: {_ms(times)}")


async def main(args: argparse.Namespace) -> None:
    base = args.dsn or server_url()
    url = await asyncio.to_thread(create_test_database, base, "luser_bench")
    try:
        await Migrator(
            url, directory=ROOT / "app" / "migrations", lock_timeout=10, statement_timeout=0
        ).up()
        luser_db.init(url, min_size=2, max_size=8)
        print(f"machine load before: {os.getloadavg()}")
        if "writer" in args.phases:
            await bench_writer(args.writer_rows, args.rounds, args.modes)
        if "usage" in args.phases:
            end = await load(url, args.rows, args.days, args.chunk, args.streams)
            await bench_usage(end, args.repeat, args.raw_repeat)
            await bench_catch_up(args.catch_up_rows, args.repeat)
        print(f"machine load after: {os.getloadavg()}")
    finally:
        await luser_db.close()
        await asyncio.to_thread(drop_test_database, base, url)


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--dsn", help="server URL (default: embedded PostgreSQL)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--phases", nargs="+", choices=("writer", "usage"), default=["writer", "usage"])
    p.add_argument("--writer-rows", type=int, default=300_000)
    p.add_argument("--rounds", type=int, default=3, help="writer rounds per mode")
    p.add_argument(
        "--modes",
        nargs="+",
        choices=tuple(SCHEMAS),
        default=["off", "on", "btree", "trigger"],
        help="writer modes, alternating in each round ('off' is always measured)",
    )
    p.add_argument("--catch-up-rows", type=int, nargs="+", default=[5_000, 50_000])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--chunk", type=int, default=500_000, help="rows per COPY statement")
    p.add_argument("--streams", type=int, default=2, help="COPY streams at once")
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--raw-repeat", type=int, default=3)
    args = p.parse_args()
    if "off" not in args.modes:
        args.modes.insert(0, "off")
    if args.quick:
        args.writer_rows, args.rounds, args.rows, args.chunk = 20_000, 1, 200_000, 50_000
        args.repeat, args.raw_repeat = 3, 1
    return args


if __name__ == "__main__":
    asyncio.run(main(_args()))

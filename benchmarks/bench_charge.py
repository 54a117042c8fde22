"""The charge's own cost: open_api_charge() (migration 0046) vs the single CTE statement
it replaced, side by side in one run.

    python benchmarks/bench_charge.py --dsn postgresql://postgres@127.0.0.1:5432/test

Creates two scratch databases on the server named by ``--dsn`` (without it: the
embedded PostgreSQL): one migrated up to 0045 (quota_deductions not partitioned, the
charge was ``_OLD_CHARGE_SQL`` below), one to the latest migration, with 9 monthly
partitions of quota_deductions as at the default retention (6 past months, this one,
2 ahead), so the lookup probes as many as in production. On one connection each,
with ``synchronous_commit = off`` (the WAL flush, the same for both, would hide the
difference), it runs ``--rounds`` alternating rounds of ``--calls`` sequential fresh
charges, then as many replays of keys already charged, and prints the median wall
time per call (round trip included) and, when the server runs on this machine, the
median CPU time its backend spent per call (``/proc/<pid>/stat``, which other
load on the machine disturbs far less). The databases are dropped at the end.

A replay used to cost two statements (the CTE, whose insert did nothing, then
``_existing``'s SELECT); the old replay here times only the first of them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from luser_db.migrations import Migrator  # noqa: E402
from luser_db.testing import create_test_database, drop_test_database, server_url  # noqa: E402

LAST_UNPARTITIONED = 45  # migration 0045: the schema the old statement ran on

# The charge before migration 0046 (app/open_api/quota.py at that time).
_OLD_CHARGE_SQL = """
WITH ins AS (
    INSERT INTO quota_deductions
        (request_id, user_id, token_id, amount, attempt, fingerprint, keyed, ability, path,
         log_request_id)
    VALUES ($1, $2, $3, $4, $6, $7, $8, $9, $10, $11)
    ON CONFLICT (request_id) DO NOTHING RETURNING 1
), wallet AS (
    UPDATE users SET balance = balance - $4
    WHERE id = $2 AND status = 'active' AND balance >= $4 AND EXISTS (SELECT 1 FROM ins)
    RETURNING balance
), token AS (
    UPDATE api_tokens SET used_quota = used_quota + $4
    WHERE id = $3 AND user_id = $2 AND status = 'enabled'
      AND (expired_time IS NULL OR expired_time > now())
      AND (quota_limit < 0 OR used_quota + $4 <= quota_limit) AND EXISTS (SELECT 1 FROM ins)
    RETURNING used_quota
)
SELECT CASE
           WHEN NOT EXISTS (SELECT 1 FROM ins) THEN 'exists'
           WHEN NOT EXISTS (SELECT 1 FROM wallet) THEN open_api_refuse('LU402')
           WHEN NOT EXISTS (SELECT 1 FROM token) THEN open_api_refuse('LU429')
           ELSE 'charged'
       END AS outcome,
       set_config('synchronous_commit', $5, true) AS synchronous_commit,
       (SELECT balance FROM wallet) AS balance,
       (SELECT used_quota FROM token) AS used_quota
"""
_NEW_CHARGE_SQL = "SELECT * FROM open_api_charge($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"

_PAST_PARTITIONS = """
DO $$
DECLARE
    m date;
BEGIN
    FOR i IN 1..6 LOOP
        m := (date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => i))::date;
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF quota_deductions '
            'FOR VALUES FROM (%L) TO (%L)',
            'quota_deductions_' || to_char(m, 'YYYYMM'), m::timestamp AT TIME ZONE 'UTC',
            (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
    END LOOP;
END $$
"""


class Wallet:
    """One connection, one wallet and one unlimited token on a migrated database."""

    def __init__(self, conn: asyncpg.Connection, sql: str, user_id: int, token_id: int) -> None:
        self.conn, self.sql, self.user_id, self.token_id = conn, sql, user_id, token_id

    async def charge(self, request_id: str) -> None:
        await self.conn.fetchrow(
            self.sql, request_id, self.user_id, self.token_id, 1, "off", "bench", None, False,
            None, None, None,
        )  # fmt: skip


async def _wallet(url: str, to: int | None, sql: str) -> Wallet:
    await Migrator(
        url, directory=ROOT / "app" / "migrations", lock_timeout=10, statement_timeout=0
    ).up(to)
    conn = await asyncpg.connect(url)
    user_id = await conn.fetchval(
        "INSERT INTO users (email, password_hash, balance) "
        "VALUES ('bench@charge.io', 'x', 1000000000000000) RETURNING id"
    )
    token_id = await conn.fetchval(
        "INSERT INTO api_tokens (user_id, name, key_hash, quota_limit) "
        "VALUES ($1, 'bench', $2, -1) RETURNING id",
        user_id,
        b"k" * 32,
    )
    if to is None:
        await conn.execute(_PAST_PARTITIONS)
    await conn.execute("SET synchronous_commit = off")
    return Wallet(conn, sql, user_id, token_id)


async def _per_call(wallet: Wallet, request_ids: list[str]) -> tuple[float, float | None]:
    """Wall and backend CPU microseconds per call."""
    cpu, started = _backend_cpu(wallet.conn), time.perf_counter()
    for request_id in request_ids:
        await wallet.charge(request_id)
    wall = (time.perf_counter() - started) / len(request_ids) * 1e6
    after = _backend_cpu(wallet.conn)
    if cpu is None or after is None:
        return wall, None
    return wall, (after - cpu) / len(request_ids) * 1e6


def _backend_cpu(conn: asyncpg.Connection) -> float | None:
    """User + system CPU seconds of the connection's backend; None if not on this host."""
    try:
        fields = Path(f"/proc/{conn.get_server_pid()}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _median(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{statistics.median(known):7.0f}" if len(known) == len(values) else "    n/a"


async def main(args: argparse.Namespace) -> None:
    base = args.dsn or server_url()
    urls = [await asyncio.to_thread(create_test_database, base, "luser_bench_charge") for _ in "ab"]
    try:
        old = await _wallet(urls[0], LAST_UNPARTITIONED, _OLD_CHARGE_SQL)
        new = await _wallet(urls[1], None, _NEW_CHARGE_SQL)
        partitions = await new.conn.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'quota_deductions'::regclass"
        )
        times: dict[str, list[tuple[float, float | None]]] = {}
        for _ in range(args.rounds):
            for name, wallet in (("before 0046", old), ("open_api_charge", new)):
                fresh = [uuid.uuid4().hex for _ in range(args.calls)]
                times.setdefault(f"{name}, fresh", []).append(await _per_call(wallet, fresh))
                times.setdefault(f"{name}, replay", []).append(await _per_call(wallet, fresh))
        print(f"{args.calls:,} calls per round, {args.rounds} rounds, {partitions} partitions")
        print(f"{'':24s} {'wall':>7s}  {'cpu':>7s}  us/call (medians; wall per round)")
        for name, values in times.items():
            wall = [w for w, _ in values]
            rounds = " ".join(f"{w:.0f}" for w in wall)
            print(f"{name:24s} {_median(wall)}  {_median([c for _, c in values])}  ({rounds})")
        for wallet in (old, new):
            await wallet.conn.close()
    finally:
        for url in urls:
            await asyncio.to_thread(drop_test_database, base, url)


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--dsn", help="server URL (default: embedded PostgreSQL)")
    p.add_argument("--calls", type=int, default=2_000)
    p.add_argument("--rounds", type=int, default=5)
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main(_args()))

"""luser_db vs raw asyncpg, side by side in one run, on the same table.

    python benchmarks/bench_orm.py --dsn postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/bench_orm.py --quick          # small row counts, a sanity run

The script creates a scratch database on the server named by ``--dsn`` (without
``--dsn``: the embedded PostgreSQL), runs the peer harness's eight workloads
(get_by_pk, filter_fetch, paginate, insert_single, insert_bulk, update_single,
transaction, iterate) plus concurrent_get, and drops the database at the end.
Raw asyncpg and luser_db alternate inside every round (who goes first alternates
too), so both sides see the same machine load; each workload's ratio (luser ops/s
over raw ops/s, higher is better) is the median of its per-round ratios, and the
summary gives their geometric mean over the eight peer workloads.

Every result is consumed the same way on both sides: luser_db returns model
objects, raw asyncpg rows turned into dicts, and EACH FIELD of every row is read
(jsonb included, so its decoding is counted on both sides).

Raw asyncpg is the fair fast hand-written baseline: hand-written SQL; a pool whose
release does no reset round trip; a binary jsonb codec (dict in, dict out, as any
asyncpg application registers); binary COPY (``copy_records_to_table``) of tuples
for the bulk insert; a server-side cursor in a transaction for iterate.
``iterate`` streams every row, reads each field and sums ``balance``; it also
reports peak traced memory (tracemalloc) while streaming N and N/10 rows: flat
means bounded memory.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import random
import secrets
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import asyncpg

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import luser_db
from luser_db import Db, Field, Model, transaction
from luser_db.embedded import start_embedded, with_database

TABLE_SQL = """
CREATE TABLE bench_users (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL UNIQUE,
    age int NOT NULL,
    balance bigint NOT NULL DEFAULT 0,
    status smallint NOT NULL DEFAULT 0,
    created_at timestamptz,
    profile jsonb
);
CREATE INDEX bench_users_status ON bench_users (status);
"""

COLUMNS = ("name", "email", "age", "balance", "status", "created_at", "profile")
INSERT_SQL = (
    "INSERT INTO bench_users (name, email, age, balance, status, created_at, profile)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id"
)
SELECT_COLS = "id, name, email, age, balance, status, created_at, profile"
FIELDS = ("id", "name", "email", "age", "balance", "status", "created_at", "profile")
PEER_WORKLOADS = (
    "get_by_pk",
    "filter_fetch",
    "paginate",
    "insert_single",
    "insert_bulk",
    "update_single",
    "transaction",
    "iterate",
)


def _read_row(row: dict[str, Any]) -> None:
    """Read every field of a raw row, as an application would."""
    for name in FIELDS:
        row[name]


def _read_model(obj: Any) -> None:
    """Read every field of a model (attribute access: jsonb decodes on first read)."""
    for name in FIELDS:
        getattr(obj, name)


class User(Model, table="bench_users"):
    id: int = Field(primary_key=True)
    name: str
    email: str
    age: int
    balance: int = 0
    status: int = 0
    created_at: datetime | None = None
    profile: dict[str, Any] | None = None


@dataclass
class Sizes:
    insert_single: int = 2_000
    insert_bulk: int = 10_000
    get_by_pk: int = 2_000
    filter_fetch: int = 10_000
    pages: int = 200
    page_size: int = 50
    update_single: int = 2_000
    transaction: int = 1_000
    concurrent_get: int = 8_000
    concurrency: int = 32
    iterate: int = 1_000_000

    @classmethod
    def quick(cls) -> Sizes:
        return cls(200, 2_000, 300, 2_000, 20, 50, 300, 100, 1_000, 32, 50_000)


@dataclass
class Result:
    """Times of every round per side; the ratio pairs the two sides of each round."""

    name: str
    ops: int = 0
    raw_times: list[float] = field(default_factory=list)
    orm_times: list[float] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def raw(self) -> float:
        return statistics.median(self.raw_times)

    @property
    def orm(self) -> float:
        return statistics.median(self.orm_times)

    @property
    def ratio(self) -> float:
        # Median of per-round ratios: both sides of a round saw the same machine load.
        return statistics.median(r / o for r, o in zip(self.raw_times, self.orm_times, strict=True))


def _row(i: int, tag: str) -> dict[str, Any]:
    return {
        "name": f"user{i}",
        "email": f"{tag}{i}@example.com",
        "age": 18 + i % 60,
        "balance": 1000,
        "status": i % 4,
        "created_at": datetime.now(UTC),
        "profile": {"city": "Shanghai", "level": i % 10, "tags": ["a", "b"]},
    }


class Bench:
    def __init__(self, dsn: str, sizes: Sizes, rounds: int) -> None:
        self.dsn = dsn
        self.sizes = sizes
        self.rounds = rounds
        self.raw: asyncpg.Pool | None = None
        self.ids: list[int] = []
        self.watcher: asyncpg.Connection | None = None
        self.notifies = 0  # the query cache's cross-process announcements seen so far

    # -- setup ----------------------------------------------------------------------

    async def open(self) -> None:
        async def no_reset(conn: asyncpg.Connection) -> None:
            return None

        async def jsonb_codec(conn: asyncpg.Connection) -> None:
            # Binary, so COPY takes dicts too; what a hand-written asyncpg app registers.
            await conn.set_type_codec(
                "jsonb",
                encoder=lambda v: b"\x01" + json.dumps(v).encode(),
                decoder=lambda b: json.loads(b[1:]),
                schema="pg_catalog",
                format="binary",
            )

        self.raw = await asyncpg.create_pool(
            self.dsn, min_size=10, max_size=10, reset=no_reset, init=jsonb_codec
        )
        luser_db.init(self.dsn, min_size=10, max_size=10)
        await Db.query_int("select 1")  # open the luser pool outside the timings
        # Count the query cache's NOTIFYs (luser_db's default config announces writes to
        # other processes): they are part of what the luser side costs the server.
        self.watcher = await asyncpg.connect(self.dsn)
        await self.watcher.add_listener(luser_db.cache.CHANNEL, self._notified)

    def _notified(self, *_: object) -> None:
        self.notifies += 1

    async def close(self) -> None:
        assert self.raw is not None
        await self.raw.close()
        if self.watcher is not None:
            await self.watcher.close()
        await luser_db.close()

    async def reset_table(self, seed: int) -> None:
        assert self.raw is not None
        async with self.raw.acquire() as conn:
            await conn.execute("TRUNCATE bench_users RESTART IDENTITY")
            if seed:
                rows = [tuple(r[c] for c in COLUMNS) for r in (_row(i, "s") for i in range(seed))]
                await conn.copy_records_to_table("bench_users", records=rows, columns=list(COLUMNS))
            await conn.execute("ANALYZE bench_users")
            self.ids = [r[0] for r in await conn.fetch("SELECT id FROM bench_users ORDER BY id")]

    # -- timing ---------------------------------------------------------------------

    async def measure(
        self,
        name: str,
        ops: int,
        raw_fn: Callable[[], Awaitable[Any]],
        orm_fn: Callable[[], Awaitable[Any]],
        prepare: Callable[[], Awaitable[None]] | None = None,
    ) -> Result:
        result = Result(name, ops=ops)
        for round_no in range(self.rounds):
            sides = [("raw", raw_fn), ("orm", orm_fn)]
            if round_no % 2:
                sides.reverse()  # alternate who goes first
            for side, fn in sides:
                if prepare is not None:
                    await prepare()
                gc.collect()
                start = time.perf_counter()
                await fn()
                getattr(result, f"{side}_times").append(time.perf_counter() - start)
        return result

    async def interleaved(
        self,
        name: str,
        ops: int,
        chunk: int,
        raw_chunk: Callable[[int, int], Awaitable[Any]],
        orm_chunk: Callable[[int, int], Awaitable[Any]],
        prepare: Callable[[], Awaitable[None]] | None = None,
    ) -> Result:
        """Alternate raw and luser every ``chunk`` operations, summing each side's time.

        Both sides then share the same stretches of machine load, which a shared or
        busy machine otherwise turns into +-30% swings between whole runs.
        """
        result = Result(name, ops=ops)
        for _ in range(self.rounds):
            if prepare is not None:
                await prepare()
            gc.collect()
            spent = {"raw": 0.0, "orm": 0.0}
            for n, lo in enumerate(range(0, ops, chunk)):
                hi = min(ops, lo + chunk)
                sides = [("raw", raw_chunk), ("orm", orm_chunk)]
                if n % 2:
                    sides.reverse()
                for side, fn in sides:
                    start = time.perf_counter()
                    await fn(lo, hi)
                    spent[side] += time.perf_counter() - start
            result.raw_times.append(spent["raw"])
            result.orm_times.append(spent["orm"])
        return result

    # -- workloads ------------------------------------------------------------------

    async def insert_single(self) -> Result:
        n = self.sizes.insert_single
        pool = self.raw
        assert pool is not None

        async def raw(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                r = _row(i, "r")
                async with pool.acquire() as conn:
                    r["id"] = await conn.fetchval(INSERT_SQL, *(r[c] for c in COLUMNS))
                _read_row(r)

        async def orm(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                user = User(**_row(i, "o"))
                await user.save()
                _read_model(user)

        return await self.interleaved("insert_single", n, 50, raw, orm, lambda: self.reset_table(0))

    async def insert_bulk(self) -> Result:
        n = self.sizes.insert_bulk
        pool = self.raw
        assert pool is not None

        get = itemgetter(*COLUMNS)

        async def raw() -> None:
            rows = [get(_row(i, "r")) for i in range(n)]
            async with pool.acquire() as conn:
                await conn.copy_records_to_table("bench_users", records=rows, columns=list(COLUMNS))

        async def orm() -> None:
            # Rows as dicts, the bulk path of batch_save: no model per row (issue 16 item 5).
            await User.batch_save([_row(i, "o") for i in range(n)])

        return await self.measure("insert_bulk", n, raw, orm, lambda: self.reset_table(0))

    async def get_by_pk(self) -> Result:
        n = self.sizes.get_by_pk
        pool = self.raw
        assert pool is not None
        ids = random.Random(1).choices(self.ids, k=n)
        sql = f"SELECT {SELECT_COLS} FROM bench_users WHERE id = $1"

        async def raw(lo: int, hi: int) -> None:
            for i in ids[lo:hi]:
                async with pool.acquire() as conn:
                    row = await conn.fetchrow(sql, i)
                _read_row(dict(row or ()))

        async def orm(lo: int, hi: int) -> None:
            for i in ids[lo:hi]:
                _read_model(await User.find_by_id(i))

        return await self.interleaved("get_by_pk", n, 50, raw, orm)

    async def filter_fetch(self) -> Result:
        n = self.sizes.filter_fetch
        pool = self.raw
        assert pool is not None
        sql = f"SELECT {SELECT_COLS} FROM bench_users WHERE status >= $1 ORDER BY id LIMIT $2"

        async def raw() -> None:
            async with pool.acquire() as conn:
                rows = await conn.fetch(sql, 0, n)
            out = [dict(r) for r in rows]
            for r in out:
                _read_row(r)
            assert len(out) == n

        async def orm() -> None:
            out = await User.query().where("status >= ?", 0).order_by("id").limit(n).all()
            for m in out:
                _read_model(m)
            assert len(out) == n

        saved, self.rounds = self.rounds, self.rounds * 3  # one query per run: more runs
        try:
            return await self.measure("filter_fetch", n, raw, orm)
        finally:
            self.rounds = saved

    async def paginate(self) -> Result:
        pages, size = self.sizes.pages, self.sizes.page_size
        pool = self.raw
        assert pool is not None
        count_sql = "SELECT count(*) FROM bench_users WHERE status >= $1"
        page_sql = (
            f"SELECT {SELECT_COLS} FROM bench_users WHERE status >= $1"
            " ORDER BY id LIMIT $2 OFFSET $3"
        )
        base = User.query().where("status >= ?", 0).order_by("id")

        async def raw(lo: int, hi: int) -> None:
            for p in range(lo + 1, hi + 1):
                async with pool.acquire() as conn:
                    total = await conn.fetchval(count_sql, 0)
                if (p - 1) * size < total:
                    async with pool.acquire() as conn:
                        rows = await conn.fetch(page_sql, 0, size, (p - 1) * size)
                    for r in rows:
                        _read_row(dict(r))

        async def orm(lo: int, hi: int) -> None:
            for p in range(lo + 1, hi + 1):
                for m in (await base.paginate(p, size)).items:
                    _read_model(m)

        return await self.interleaved("paginate", pages, 10, raw, orm)

    async def update_single(self) -> Result:
        n = self.sizes.update_single
        pool = self.raw
        assert pool is not None
        ids = self.ids[:n]
        models = await User.find_by_ids(ids)
        tick = {"n": 0}

        async def raw(lo: int, hi: int) -> None:
            for k in range(lo, hi):
                async with pool.acquire() as conn:
                    await conn.execute(
                        "UPDATE bench_users SET age = $1 WHERE id = $2", 20 + k % 50, ids[k]
                    )

        async def orm(lo: int, hi: int) -> None:
            tick["n"] += 1  # a new value each round, so update() has something to write
            for k in range(lo, hi):
                m = models[k]
                m.age = 21 + (k + tick["n"]) % 50
                await m.update()

        return await self.interleaved("update_single", n, 50, raw, orm)

    async def transaction(self) -> Result:
        n = self.sizes.transaction
        pool = self.raw
        assert pool is not None
        pairs = [(self.ids[k % len(self.ids)], self.ids[(k + 1) % len(self.ids)]) for k in range(n)]
        lock_sql = f"SELECT {SELECT_COLS} FROM bench_users WHERE id = $1 FOR UPDATE"

        async def raw(lo: int, hi: int) -> None:
            for a, b in pairs[lo:hi]:
                async with pool.acquire() as conn, conn.transaction():
                    row = dict(await conn.fetchrow(lock_sql, a) or ())
                    _read_row(row)
                    await conn.execute(
                        "UPDATE bench_users SET balance = $1 WHERE id = $2", row["balance"] - 1, a
                    )
                    await conn.execute(
                        "UPDATE bench_users SET balance = balance + 1 WHERE id = $1", b
                    )

        async def orm(lo: int, hi: int) -> None:
            for a, b in pairs[lo:hi]:
                async with transaction():
                    user = await User.query().where(id=a).for_update().first()
                    assert user is not None
                    _read_model(user)
                    user.balance -= 1
                    await user.update()
                    await Db.execute("UPDATE bench_users SET balance = balance + 1 WHERE id = ?", b)

        return await self.interleaved("transaction", n, 25, raw, orm)

    async def concurrent_get(self) -> Result:
        n, workers = self.sizes.concurrent_get, self.sizes.concurrency
        pool = self.raw
        assert pool is not None
        ids = random.Random(2).choices(self.ids, k=n)
        sql = f"SELECT {SELECT_COLS} FROM bench_users WHERE id = $1"

        async def raw_worker(chunk: list[int]) -> None:
            for i in chunk:
                async with pool.acquire() as conn:
                    row = await conn.fetchrow(sql, i)
                _read_row(dict(row or ()))

        async def orm_worker(chunk: list[int]) -> None:
            for i in chunk:
                _read_model(await User.find_by_id(i))

        async def raw(lo: int, hi: int) -> None:
            part = ids[lo:hi]
            await asyncio.gather(*(raw_worker(part[w::workers]) for w in range(workers)))

        async def orm(lo: int, hi: int) -> None:
            part = ids[lo:hi]
            await asyncio.gather(*(orm_worker(part[w::workers]) for w in range(workers)))

        return await self.interleaved("concurrent_get", n, workers * 10, raw, orm)

    async def iterate(self) -> Result:
        n = self.sizes.iterate
        pool = self.raw
        assert pool is not None
        async with pool.acquire() as conn:
            await conn.execute("DROP TABLE IF EXISTS bench_iter")
            await conn.execute(
                "CREATE TABLE bench_iter AS SELECT g AS id, 'user' || g AS name,"
                " 'u' || g || '@example.com' AS email, 18 + g % 60 AS age, 1000::bigint AS balance,"
                " (g % 4)::smallint AS status, now() AS created_at,"
                " jsonb_build_object('city', 'Shanghai', 'level', g % 10) AS profile"
                " FROM generate_series(1, $1::int) g",
                n,
            )

        class Row(User, table="bench_iter"):
            pass

        async def raw_stream(limit: int) -> int:
            total = 0
            async with pool.acquire() as conn, conn.transaction():
                async for r in conn.cursor(
                    f"SELECT {SELECT_COLS} FROM bench_iter ORDER BY id LIMIT $1",
                    limit,
                    prefetch=1000,
                ):
                    row = dict(r)
                    _read_row(row)
                    total += row["balance"]
            return total

        notes = await self.iterate_memory(Row, n)

        async def raw() -> None:
            assert await raw_stream(n) == 1000 * n

        async def orm() -> None:
            total = 0
            async for m in Row.query().order_by("id").limit(n).iterate(batch=1000):
                _read_model(m)
                total += m.balance
            assert total == 1000 * n

        saved, self.rounds = self.rounds, min(self.rounds, 3)  # a million rows per run
        try:
            result = await self.measure("iterate", n, raw, orm)
        finally:
            self.rounds = saved
        async with pool.acquire() as conn:
            await conn.execute("DROP TABLE bench_iter")
        result.notes = notes
        return result

    async def iterate_memory(self, model: type[User], n: int) -> dict[str, Any]:
        """Peak traced memory while the luser side streams n/10 and n rows: flat is bounded."""

        async def stream(limit: int) -> tuple[float, int, int]:
            gc.collect()
            tracemalloc.start()
            start = time.perf_counter()
            count = 0
            async for _ in model.query().order_by("id").limit(limit).iterate(batch=1000):
                count += 1
            elapsed = time.perf_counter() - start
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            return elapsed, peak, count

        small_t, small_peak, small_n = await stream(n // 10)
        big_t, big_peak, big_n = await stream(n)
        assert big_n == n and small_n == n // 10
        return {
            "peak_small": small_peak,
            "peak_big": big_peak,
            "rows_small": small_n,
            "rows_big": big_n,
            "traced_seconds": small_t + big_t,
        }


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


WORKLOADS = (
    "insert_single",
    "insert_bulk",
    "get_by_pk",
    "filter_fetch",
    "paginate",
    "update_single",
    "transaction",
    "concurrent_get",
)


async def run(args: argparse.Namespace) -> list[Result]:
    server = args.dsn or start_embedded(os.environ.get("LUSER_BENCH_EMBEDDED_DIR", ".luser/pgdata"))
    scratch = f"luser_bench_{os.getpid()}_{secrets.token_hex(3)}"
    await _admin(server, f'CREATE DATABASE "{scratch}"')
    dsn = with_database(server, scratch)
    sizes = Sizes.quick() if args.quick else Sizes()
    bench = Bench(dsn, sizes, args.rounds)
    results: list[Result] = []
    try:
        # Commits wait for no disk flush, so write workloads measure client overhead, not fsync.
        await _admin(server, f'ALTER DATABASE "{scratch}" SET synchronous_commit = off')
        await _admin(dsn, TABLE_SQL)
        await bench.open()
        selected = [w for w in WORKLOADS if not args.only or w in args.only]
        for name in selected:
            if name.startswith("insert"):
                pass
            else:
                await bench.reset_table(max(sizes.filter_fetch, sizes.get_by_pk, 10_000))
            before = bench.notifies
            result = await getattr(bench, name)()
            await Db.query_int("select 1")  # a round trip: NOTIFYs sent by now have arrived
            result.notes["notifies"] = bench.notifies - before
            results.append(result)
            _print_row(result)
        if not args.only or "iterate" in args.only:
            result = await bench.iterate()
            results.append(result)
            _print_row(result)
    finally:
        await bench.close()
        await _admin(server, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    return results


def _print_row(r: Result) -> None:
    raw_rate, orm_rate = r.ops / r.raw, r.ops / r.orm
    rounds = " ".join(f"{a / b:.2f}" for a, b in zip(r.raw_times, r.orm_times, strict=True))
    print(
        f"{r.name:<15} {r.ops:>9,} ops  raw {raw_rate:>11,.0f}/s  luser {orm_rate:>11,.0f}/s"
        f"  ratio {r.ratio:5.2f}  (per round: {rounds})"
        + (f"  cache NOTIFYs: {r.notes['notifies']:,}" if r.notes.get("notifies") else ""),
        flush=True,
    )


def _geomean(ratios: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in ratios) / len(ratios)) if ratios else float("nan")


def _summary(results: list[Result]) -> str:
    geo = _geomean([r.ratio for r in results if r.name in PEER_WORKLOADS])
    geo_all = _geomean([r.ratio for r in results])
    lines = [
        "| workload | ops | raw asyncpg ops/s | luser_db ops/s | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        raw_rate, orm_rate = r.ops / r.raw, r.ops / r.orm
        lines.append(
            f"| {r.name} | {r.ops:,} | {raw_rate:,.0f} | {orm_rate:,.0f} | {r.ratio:.2f} |"
        )
    lines.append(f"| **geometric mean (8 peer workloads)** | | | | **{geo:.2f}** |")
    lines.append(f"| geometric mean (all rows) | | | | {geo_all:.2f} |")
    for r in results:
        if r.name == "iterate":
            small, big = r.notes["peak_small"] / 1e6, r.notes["peak_big"] / 1e6
            lines.append("")
            lines.append(
                f"iterate peak traced memory: {small:.1f} MB for {r.notes['rows_small']:,} rows,"
                f" {big:.1f} MB for {r.notes['rows_big']:,} rows"
            )
    return "\n".join(lines)


def _watch_statements(mode: str) -> None:
    if mode == "debug":
        import logging

        sql_log = logging.getLogger("luser_db.sql")
        sql_log.setLevel(logging.DEBUG)
        sql_log.addHandler(logging.FileHandler(os.devnull))
        sql_log.propagate = False
    elif mode == "listener":
        luser_db.on_query(lambda event: None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dsn", help="server URL (a scratch database is created on it); default: embedded"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small row counts for a fast sanity run"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="paired runs per workload; the median ratio counts"
    )
    parser.add_argument("--only", nargs="*", help="run only these workloads")
    parser.add_argument(
        "--sql-log",
        choices=("off", "debug", "listener"),
        default="off",
        help="measure the cost of watching statements: the luser_db.sql logger at DEBUG"
        " (written to /dev/null), or one on_query listener",
    )
    args = parser.parse_args()
    _watch_statements(args.sql_log)
    results = asyncio.run(run(args))
    print()
    print(_summary(results))


if __name__ == "__main__":
    main()

"""Relations and keyset pages: luser_db against the same queries written by hand in asyncpg.

    python benchmarks/bench_relations.py --dsn postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/bench_relations.py --quick      # small sizes, a sanity run

``include``: 1,000 parents with 10 children each, loaded with
``Parent.query().include("children")`` against the two queries a careful developer
writes by hand (parents, then ``child.parent_id = ANY($1)`` grouped in Python); every
field of every row is read on both sides, rounds alternate who goes first (the
harness of bench_orm.py). Ratio = raw time / luser time (higher is better).

``keyset``/``offset``: one page of 50 at page 1 and at page 10,000 of a table ordered by
``created_at desc, id desc`` (index on both): keyset pages continue after a cursor,
OFFSET pages skip rows. Ratio = page-1 time / deep-page time (1.0 = as fast deep).

``batch_save tuples/dicts``: 10,000 rows through ``batch_save`` against raw binary
COPY of the same rows (the raw side turns dicts into tuples itself).
``batch_upsert``: 10,000 rows, half of them already present, against the same
temp table + COPY + ``INSERT ... ON CONFLICT`` written by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_orm import Bench, Result, Sizes, _admin

import luser_db
from luser_db import Field, Model, has_many
from luser_db.embedded import start_embedded, with_database
from luser_db.keyset import _keys, encode_cursor, fingerprint

SCHEMA = """
CREATE TABLE bench_parent (id bigserial PRIMARY KEY, name text NOT NULL, score int NOT NULL);
CREATE TABLE bench_child (id bigserial PRIMARY KEY, bench_parent_id bigint NOT NULL,
                          body text NOT NULL, n int NOT NULL);
CREATE INDEX bench_child_parent ON bench_child (bench_parent_id);
CREATE TABLE bench_event (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL,
                          kind text NOT NULL, amount int NOT NULL);
CREATE INDEX bench_event_order ON bench_event (created_at, id);
CREATE TABLE bench_member (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE,
                           name text NOT NULL, n int NOT NULL);
"""


class BenchChild(Model, table="bench_child"):
    id: int = Field(primary_key=True)
    bench_parent_id: int
    body: str
    n: int


class BenchParent(Model, table="bench_parent"):
    id: int = Field(primary_key=True)
    name: str
    score: int
    children = has_many(BenchChild)


class BenchEvent(Model, table="bench_event"):
    id: int = Field(primary_key=True)
    created_at: datetime
    kind: str
    amount: int


class BenchMember(Model, table="bench_member"):
    id: int = Field(primary_key=True)
    email: str
    name: str
    n: int


MEMBER_COLUMNS = ["email", "name", "n"]
RAW_UPSERT = (
    "WITH up AS (INSERT INTO bench_member (email, name, n) SELECT email, name, n FROM _raw_up"
    " ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name, n = EXCLUDED.n"
    " RETURNING (xmax = 0) AS inserted)"
    " SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up"
)

PARENT_SQL = "SELECT id, name, score FROM bench_parent ORDER BY id LIMIT 1000"
CHILD_SQL = (
    "SELECT id, bench_parent_id, body, n FROM bench_child"
    " WHERE bench_parent_id = ANY($1) ORDER BY id"
)


class RelationBench(Bench):
    async def seed(self, parents: int, events: int) -> None:
        assert self.raw is not None
        async with self.raw.acquire() as conn:
            await conn.copy_records_to_table(
                "bench_parent",
                records=[(f"p{i}", i % 100) for i in range(parents)],
                columns=["name", "score"],
            )
            await conn.copy_records_to_table(
                "bench_child",
                records=[(p, f"c{p}-{j}", j) for p in range(1, parents + 1) for j in range(10)],
                columns=["bench_parent_id", "body", "n"],
            )
            start = datetime(2026, 1, 1, tzinfo=UTC)
            await conn.copy_records_to_table(
                "bench_event",
                records=[(start + timedelta(seconds=i // 2), "k", i) for i in range(events)],
                columns=["created_at", "kind", "amount"],
            )
            await conn.execute("ANALYZE")

    async def include(self, repeats: int) -> Result:
        pool = self.raw
        assert pool is not None

        async def raw() -> None:
            for _ in range(repeats):
                async with pool.acquire() as conn:
                    parents = [dict(r) for r in await conn.fetch(PARENT_SQL)]
                    ids = [p["id"] for p in parents]
                    children = await conn.fetch(CHILD_SQL, ids)
                groups: dict[int, list[dict[str, Any]]] = {}
                for c in children:
                    groups.setdefault(c["bench_parent_id"], []).append(dict(c))
                for p in parents:
                    p["children"] = groups.get(p["id"], [])
                _read_raw(parents)

        q = BenchParent.query().order_by("id").limit(1000).include("children")

        async def orm() -> None:
            for _ in range(repeats):
                _read_orm(await q.all())

        return await self.measure("include", repeats, raw, orm)

    async def bulk(self, shape: str, n: int) -> Result:
        """batch_save of ``n`` tuples or dicts against raw binary COPY of the same rows."""
        pool = self.raw
        assert pool is not None
        tuples = [(f"m{i}@x", f"name{i}", i) for i in range(n)]
        dicts = [{"email": e, "name": a, "n": k} for e, a, k in tuples]

        async def raw() -> None:
            rows = tuples if shape == "tuples" else [(d["email"], d["name"], d["n"]) for d in dicts]
            async with pool.acquire() as conn:
                await conn.copy_records_to_table(
                    "bench_member", records=rows, columns=MEMBER_COLUMNS
                )

        async def orm() -> None:
            if shape == "tuples":
                await BenchMember.batch_save(tuples, columns=MEMBER_COLUMNS)
            else:
                await BenchMember.batch_save(dicts)

        return await self.measure(f"batch_save {shape}", n, raw, orm, self._empty_members)

    async def upsert(self, n: int) -> Result:
        """batch_upsert of ``n`` rows (half new) against the same steps by hand."""
        pool = self.raw
        assert pool is not None
        rows = [(f"m{i}@x", f"new{i}", i) for i in range(n)]

        async def raw() -> None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "CREATE TEMP TABLE _raw_up ON COMMIT DROP AS"
                    " SELECT email, name, n FROM bench_member WITH NO DATA"
                )
                await conn.copy_records_to_table("_raw_up", records=rows, columns=MEMBER_COLUMNS)
                await conn.fetchrow(RAW_UPSERT)

        async def orm() -> None:
            await BenchMember.batch_upsert(
                rows, conflict="email", update=("name", "n"), columns=MEMBER_COLUMNS
            )

        async def half_present() -> None:
            await self._empty_members()
            assert pool is not None
            await pool.execute(
                "INSERT INTO bench_member (email, name, n)"
                " SELECT 'm' || i || '@x', 'old', 0 FROM generate_series(0, $1 - 1, 2) i",
                n,
            )

        return await self.measure("batch_upsert", n, raw, orm, half_present)

    async def _empty_members(self) -> None:
        assert self.raw is not None
        await self.raw.execute("TRUNCATE bench_member RESTART IDENTITY")

    async def pages(self, name: str, deep_page: int, size: int, repeats: int) -> Result:
        """Result whose raw side is page 1 and whose orm side is page ``deep_page``."""
        q = BenchEvent.query().order_by("created_at desc", "id desc")
        if name == "keyset":
            cursor = await self._cursor_before(q, (deep_page - 1) * size)

            async def first() -> None:
                for _ in range(repeats):
                    await q.keyset(size=size)

            async def deep() -> None:
                for _ in range(repeats):
                    await q.keyset(size=size, after=cursor)

        else:

            async def first() -> None:
                for _ in range(repeats):
                    await q.limit(size).offset(0).all()

            async def deep() -> None:
                for _ in range(repeats):
                    await q.limit(size).offset((deep_page - 1) * size).all()

        return await self.measure(f"{name} p{deep_page:,} vs p1", repeats, first, deep)

    async def _cursor_before(self, q: Any, offset: int) -> str:
        """The cursor a client holds after reading ``offset`` rows (walking there is slow)."""
        last = (await q.limit(1).offset(offset - 1).all())[0]
        keys = _keys(q)
        return encode_cursor(fingerprint(q._meta, keys), [getattr(last, n) for n, _ in keys])


def _read_raw(parents: list[dict[str, Any]]) -> None:
    for p in parents:
        _ = p["id"], p["name"], p["score"]
        for c in p["children"]:
            _ = c["id"], c["bench_parent_id"], c["body"], c["n"]


def _read_orm(parents: list[BenchParent]) -> None:
    for p in parents:
        _ = p.id, p.name, p.score
        for c in p.children:
            _ = c.id, c.bench_parent_id, c.body, c.n


async def run(args: argparse.Namespace) -> list[Result]:
    server = args.dsn or start_embedded(os.environ.get("LUSER_BENCH_EMBEDDED_DIR", ".luser/pgdata"))
    scratch = f"luser_bench_rel_{os.getpid()}_{secrets.token_hex(3)}"
    await _admin(server, f'CREATE DATABASE "{scratch}"')
    dsn = with_database(server, scratch)
    deep_page, size = (200, 50) if args.quick else (10_000, 50)
    repeats = 5 if args.quick else 20
    bulk_rows = 2_000 if args.quick else 10_000
    bench = RelationBench(dsn, Sizes(), args.rounds)
    results: list[Result] = []
    try:
        await _admin(dsn, SCHEMA)
        await bench.open()
        started = time.perf_counter()
        await bench.seed(1000, deep_page * size + size)
        print(f"(seeded in {time.perf_counter() - started:.1f} s)", flush=True)
        for result in (
            await bench.include(repeats),
            await bench.pages("keyset", deep_page, size, repeats * 5),
            await bench.pages("offset", deep_page, size, repeats),
            await bench.bulk("tuples", bulk_rows),
            await bench.bulk("dicts", bulk_rows),
            await bench.upsert(bulk_rows),
        ):
            results.append(result)
            print(_line(result), flush=True)
    finally:
        await bench.close()
        await luser_db.close()
        await _admin(server, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    return results


def _line(r: Result) -> str:
    if r.name.startswith("batch_"):
        return (
            f"| {r.name}, {r.ops:,} rows | {r.raw * 1e3:.2f} ms (raw asyncpg)"
            f" | {r.orm * 1e3:.2f} ms (luser_db) | {r.ratio:.2f} |"
        )
    if r.name == "include":
        return (
            f"| include 1,000 parents x 10 children | {r.raw / r.ops * 1e3:.2f} ms (2 hand-written"
            f" asyncpg queries) | {r.orm / r.ops * 1e3:.2f} ms (luser_db) | {r.ratio:.2f} |"
        )
    kind, page = r.name.split()[:2]
    return (
        f"| {kind} page {page[1:]} vs page 1 | {r.raw / r.ops * 1e3:.2f} ms (page 1)"
        f" | {r.orm / r.ops * 1e3:.2f} ms (deep page) | {r.ratio:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", help="server URL (a scratch database is created on it)")
    parser.add_argument("--quick", action="store_true", help="small sizes for a sanity run")
    parser.add_argument("--rounds", type=int, default=5, help="paired runs; the median counts")
    args = parser.parse_args()
    print("| workload | baseline | measured | ratio (baseline / measured) |")
    print("|---|---:|---:|---:|")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()

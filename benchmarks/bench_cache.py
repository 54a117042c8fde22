"""The query cache: a hit vs the query it replaces (target: a hit >= 20x faster).

    python benchmarks/bench_cache.py --dsn postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/bench_cache.py --dsn ... --redis redis://127.0.0.1:6379/15

Creates a scratch database on the ``--dsn`` server (without it: the embedded
PostgreSQL) with ``--rows`` published/unpublished videos, then times, per workload,
the uncached call and the same call answered from the cache (best of ``--rounds``
rounds of ``--calls`` sequential calls each), and prints calls per second and the
ratio. ``--redis`` adds the Redis backend. The database is dropped afterwards.

Workloads: ``page`` -- ``Model.query()...paginate(1, 20)`` over a filtered, sorted
table (a count and a page: what the catalog's public list runs); ``list`` --
``.all()`` of 20 rows; ``raw`` -- ``Db.find`` / ``Db.find_by_cache`` of 20 rows.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import luser_db
from luser_db import Db, Field, Model, cache
from luser_db.embedded import start_embedded, with_database

TABLE_SQL = """
CREATE TABLE bench_videos (
    id bigserial PRIMARY KEY,
    title text NOT NULL,
    status text NOT NULL,
    views int NOT NULL,
    published_at timestamptz
);
CREATE INDEX bench_videos_published ON bench_videos (published_at DESC, id DESC)
    WHERE status = 'published';
"""

RAW_SQL = (
    "select id, title, views, published_at from bench_videos"
    " where status = 'published' order by published_at desc, id desc limit 20"
)


class BenchVideo(Model, table="bench_videos"):
    id: int = Field(primary_key=True)
    title: str
    status: str
    views: int
    published_at: datetime | None = None


# Defined once, as a service defines its hot queries (app/catalog/service.py): each
# builder keeps its compiled SQL and cache key.
PUBLISHED = (
    BenchVideo.query()
    .where("status = 'published'")
    .select("id", "title", "views", "published_at")
    .order_by("published_at desc", "id desc")
)
LIST = PUBLISHED.limit(20)
CACHED_PUBLISHED = PUBLISHED.cache("bench_page")
CACHED_LIST = LIST.cache("bench_list")

WORKLOADS: dict[str, tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]] = {
    "page": (lambda: PUBLISHED.paginate(1, 20), lambda: CACHED_PUBLISHED.paginate(1, 20)),
    "list": (LIST.all, CACHED_LIST.all),
    "raw": (
        lambda: Db.find(RAW_SQL),
        lambda: Db.find_by_cache("bench_raw", "newest", RAW_SQL),
    ),
}


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _fill(rows: int) -> None:
    now = datetime.now(UTC)
    records = [
        (f"video {i}", "published" if i % 4 else "draft", i % 1000, now - timedelta(seconds=i))
        for i in range(rows)
    ]
    await Db.copy_records(
        "bench_videos", records, columns=("title", "status", "views", "published_at")
    )
    await Db.execute("analyze bench_videos")


async def _rate(call: Callable[[], Awaitable[Any]], calls: int, rounds: int) -> float:
    """Best calls/second over ``rounds`` rounds of ``calls`` sequential calls."""
    await call()  # warm: prepared statement, cache entry
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            await call()
        best = max(best, calls / (time.perf_counter() - started))
    return best


async def _measure(backend: str, calls: int, rounds: int) -> list[tuple[str, float, float]]:
    out = []
    for name, (plain, cached) in WORKLOADS.items():
        query = await _rate(plain, calls, rounds)
        hit = await _rate(cached, calls * 10, rounds)
        stats = cache.stats()
        assert stats.hits.get(f"bench_{name}", 0) >= calls, f"{name}: not served from {backend}"
        out.append((name, query, hit))
    return out


async def run(args: argparse.Namespace) -> None:
    server = args.dsn or start_embedded(os.environ.get("LUSER_BENCH_EMBEDDED_DIR", ".luser/pgdata"))
    scratch = f"luser_bench_cache_{os.getpid()}_{secrets.token_hex(3)}"
    await _admin(server, f'CREATE DATABASE "{scratch}"')
    dsn = with_database(server, scratch)
    try:
        await _admin(dsn, TABLE_SQL)
        luser_db.init(dsn, min_size=2, max_size=4)
        await _fill(args.rows)
        backends = [("memory", {"backend": "memory"})]
        if args.redis:
            prefix = f"bench:{secrets.token_hex(4)}:"
            backends.append(
                ("redis", {"backend": "redis", "url": args.redis, "key_prefix": prefix})
            )
        print(f"{args.rows} rows, best of {args.rounds} rounds; calls/s (higher is better)")
        print(f"{'backend':8} {'workload':8} {'query':>10} {'cache hit':>12} {'ratio':>8}")
        for backend, options in backends:
            cache.reset()
            cache.configure(enabled=True, **options)
            for name, query, hit in await _measure(backend, args.calls, args.rounds):
                print(f"{backend:8} {name:8} {query:10.0f} {hit:12.0f} {hit / query:7.1f}x")
            await cache.close()
    finally:
        await luser_db.close()
        await _admin(server, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", help="PostgreSQL server URL (default: embedded)")
    parser.add_argument("--redis", help="also measure the Redis backend at this URL")
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the table")
    parser.add_argument("--calls", type=int, default=500, help="uncached calls per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the best counts")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

"""SQL template files and the model generator: what they cost.

    python benchmarks/bench_templates.py --dsn postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/bench_templates.py --quick

Creates a scratch database on the server named by ``--dsn`` (without it: the
embedded PostgreSQL) and drops it at the end. Targets (issue 15):

- a template call costs at most 5 % more than the same SQL through ``Db.find``:
  ``Db.find`` and ``Db.template`` alternate, call by call, over the same rows, and the
  medians of single calls are compared, for a static statement and for one with
  Jinja fragments (against ``Db.find`` on the SQL that rendering produces);
- the generator handles 200 tables in under 5 s (catalog reads, rendering and the
  ``ruff format`` pass included), timed on a schema of 200 tables of 12 columns.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import luser_db
from luser_db import Db, render_template, set_sql_dirs
from luser_db.embedded import start_embedded, with_database
from luser_db.generate import generate_models

SETUP_SQL = """
CREATE TABLE bench_tpl (id bigserial PRIMARY KEY, name text NOT NULL, age int NOT NULL);
INSERT INTO bench_tpl (name, age) SELECT 'user' || g, g % 90 FROM generate_series(1, 1000) g;
ANALYZE bench_tpl;
"""

TEMPLATES = """
-- name: adults
SELECT id, name, age FROM bench_tpl WHERE age >= :min_age ORDER BY id LIMIT 20

-- name: search
SELECT id, name, age FROM bench_tpl WHERE true
{% if name %} AND name = :name {% endif %}
{% if min_age is not none %} AND age >= :min_age {% endif %}
ORDER BY {{ sort or "id" }} LIMIT 20
"""

FIND_SQL = "SELECT id, name, age FROM bench_tpl WHERE age >= ? ORDER BY id LIMIT 20"

Call = Callable[[], Awaitable[Any]]


async def compare(label: str, baseline: Call, candidate: Call, n: int, rounds: int) -> None:
    """Time the two call by call, alternating which goes first; compare the medians.

    Interleaving puts both under the same load (the machine is shared), and the median
    of single calls ignores the scheduler's outliers that dominate a mean.
    """
    for call in (baseline, candidate):  # warm the statement caches
        for _ in range(max(n // 10, 10)):
            await call()
    base: list[float] = []
    cand: list[float] = []
    clock = time.perf_counter
    for i in range(n * rounds):
        pair = (
            ((baseline, base), (candidate, cand))
            if i % 2
            else ((candidate, cand), (baseline, base))
        )
        for call, times in pair:
            start = clock()
            await call()
            times.append(clock() - start)
    b, c = statistics.median(base), statistics.median(cand)
    overhead = (c / b - 1) * 100
    verdict = "ok" if overhead <= 5 else "OVER 5 %"
    print(
        f"{label:<34} Db.find {b * 1e6:7.1f} µs   template {c * 1e6:7.1f} µs"
        f"   overhead {overhead:+5.1f} %  {verdict}"
    )


async def bench_templates(n: int, rounds: int) -> None:
    await Db.execute(SETUP_SQL)
    folder = Path(tempfile.mkdtemp())
    (folder / "bench.sql").write_text(TEMPLATES)
    set_sql_dirs(folder, reload=False)
    # In-process cost of rendering alone, without a round trip.
    start = time.perf_counter()
    for _ in range(100_000):
        render_template("bench.adults", min_age=30)
    static_us = (time.perf_counter() - start) / 100_000 * 1e6
    start = time.perf_counter()
    for _ in range(20_000):
        render_template("bench.search", min_age=30, sort="age")
    dynamic_us = (time.perf_counter() - start) / 20_000 * 1e6
    print(
        f"render_template: static {static_us:.2f} µs/call, with fragments {dynamic_us:.2f} µs/call"
    )

    await compare(
        "static (:min_age)",
        lambda: Db.find(FIND_SQL, 30),
        lambda: Db.template("bench.adults", min_age=30),
        n,
        rounds,
    )
    rendered, _ = render_template("bench.search", min_age=30, sort="age")
    await compare(
        "Jinja fragments (min_age, sort)",
        lambda: Db.find(rendered, 30),
        lambda: Db.template("bench.search", min_age=30, sort="age"),
        n,
        rounds,
    )


def _table_sql(i: int) -> str:
    return (
        f"CREATE TABLE gen_bench.t{i:03d} ("
        " id bigserial PRIMARY KEY, name text NOT NULL, title varchar(200),"
        " price numeric(10, 2), flag boolean NOT NULL DEFAULT false, born date,"
        " uid uuid, tags text[], meta jsonb NOT NULL DEFAULT '{}', state gen_bench_state,"
        " created_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz);"
        f" COMMENT ON TABLE gen_bench.t{i:03d} IS 'Benchmark table {i}.';"
    )


async def bench_generator(url: str, tables: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE SCHEMA gen_bench; CREATE TYPE gen_bench_state AS ENUM ('a', 'b', 'c');"
        )
        await conn.execute("".join(_table_sql(i) for i in range(tables)))
        start = time.perf_counter()
        source = await generate_models(conn, "gen_bench")
        elapsed = time.perf_counter() - start
    finally:
        await conn.close()
    classes = source.count("(Model, table=")
    verdict = "ok" if elapsed < 5 else "OVER 5 s"
    print(
        f"generate_models: {classes} tables, {len(source.splitlines())} lines"
        f" in {elapsed:.2f} s  {verdict}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", help="PostgreSQL server URL (default: embedded)")
    parser.add_argument("--calls", type=int, default=2000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tables", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="small counts, a sanity run")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.rounds = 200, 3
    base = args.dsn or start_embedded(".luser/pgdata")
    name = f"bench_tpl_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(base)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(base, name)
    try:
        luser_db.init(url, min_size=1, max_size=2)
        await bench_templates(args.calls, args.rounds)
        await bench_generator(url, args.tables)
    finally:
        await luser_db.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())

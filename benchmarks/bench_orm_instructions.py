"""Client instructions per operation of bench_orm's workloads, counted by callgrind.

    python benchmarks/bench_orm_instructions.py --dsn postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/bench_orm_instructions.py --dsn ... --only transaction --sides orm

Wall-clock ratios on a shared 2-core machine move with the load; the number of CPU
instructions the client process executes per operation does not. For each workload
and side (raw asyncpg or luser_db) this runs ``bench_orm.py``'s own workload code
under ``valgrind --tool=callgrind`` twice, with a small and a large operation count;
the difference of the two totals over the difference of the counts is the cost of
one operation, start-up, seeding and warm-up cancelling out. The PostgreSQL server
is another process and is not counted. ``filter_fetch`` counts one query of
``--rows`` rows as one operation; ``iterate`` and ``insert_bulk`` count one ROW as
one operation (one stream, one COPY of that many rows); ``paginate`` one page.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import bench_orm  # noqa: E402

WORKLOADS = (
    "insert_single",
    "insert_bulk",
    "update_single",
    "filter_fetch",
    "paginate",
    "transaction",
    "concurrent_get",
    "get_by_pk",
    "iterate",
)
COUNTS = {
    "filter_fetch": (2, 7),
    "concurrent_get": (64, 320),
    "paginate": (20, 120),  # pages of 50 within the 10,000 seeded rows
    "insert_bulk": (2_000, 12_000),
    "iterate": (2_000, 12_000),
}
DEFAULT_COUNTS = (50, 250)
# Workloads whose operation is a row of one run (a COPY, a stream), not one run.
PER_ROW = ("insert_bulk", "iterate")


class _OneSide(bench_orm.Bench):
    """Runs only one side of a workload, ``ops`` operations, without the pairing."""

    def __init__(self, dsn: str, sizes: bench_orm.Sizes, side: str, ops: int) -> None:
        super().__init__(dsn, sizes, rounds=1)
        self.side, self.ops = side, ops

    async def interleaved(self, name: str, ops: int, chunk: int, raw_chunk: Any, orm_chunk: Any,
                          prepare: Any = None) -> bench_orm.Result:  # fmt: skip
        if prepare is not None:
            await prepare()
        fn = raw_chunk if self.side == "raw" else orm_chunk
        await fn(0, self.ops)
        return bench_orm.Result(name)

    async def measure(self, name: str, ops: int, raw_fn: Any, orm_fn: Any,
                      prepare: Any = None) -> bench_orm.Result:  # fmt: skip
        fn = raw_fn if self.side == "raw" else orm_fn
        for _ in range(1 if name in PER_ROW else self.ops):
            await fn()
        return bench_orm.Result(name)

    async def iterate_memory(self, model: Any, n: int) -> dict[str, Any]:
        return {}  # tracemalloc's streams are not the workload


async def drive(dsn: str, workload: str, side: str, ops: int, rows: int) -> None:
    sizes = bench_orm.Sizes(
        insert_single=ops,
        insert_bulk=ops,
        update_single=ops,
        get_by_pk=ops,
        filter_fetch=rows,
        pages=ops,
        transaction=ops,
        concurrent_get=ops,
        iterate=ops,
    )
    bench = _OneSide(dsn, sizes, side, ops)
    await bench.open()
    try:
        await bench.reset_table(0 if workload.startswith("insert") else 10_000)
        await getattr(bench, workload)()
    finally:
        await bench.close()


def _count(dsn: str, workload: str, side: str, ops: int, rows: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
               os.path.abspath(__file__), "--drive", "--dsn", dsn, "--only", workload,
               "--sides", side, "--ops", str(ops), "--rows", str(rows)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        match = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode or not match:
            raise SystemExit(f"{workload}/{side} failed:\n{done.stdout}\n{done.stderr[-3000:]}")
        return int(match.group(1))


async def _admin(dsn: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", required=True, help="server URL; a scratch database is made")
    parser.add_argument("--only", nargs="*", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--sides", nargs="*", default=["raw", "orm"], choices=("raw", "orm"))
    parser.add_argument("--rows", type=int, default=2_000, help="rows per filter_fetch query")
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ops", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        asyncio.run(drive(args.dsn, args.only[0], args.sides[0], args.ops, args.rows))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed (apt-get install valgrind)")
    scratch = f"luser_bench_ir_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(_admin(args.dsn, f'CREATE DATABASE "{scratch}"'))
    dsn = bench_orm.with_database(args.dsn, scratch)
    try:
        asyncio.run(_admin(dsn, bench_orm.TABLE_SQL))
        print("| workload | side | instructions per operation |")
        print("|---|---|---:|")
        for workload in args.only:
            small, large = COUNTS.get(workload, DEFAULT_COUNTS)
            for side in args.sides:
                lo = _count(dsn, workload, side, small, args.rows)
                hi = _count(dsn, workload, side, large, args.rows)
                print(f"| {workload} | {side} | {(hi - lo) / (large - small):,.0f} |", flush=True)
    finally:
        asyncio.run(_admin(args.dsn, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))


if __name__ == "__main__":
    main()

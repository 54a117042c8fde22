"""Python bytecodes per operation of one side of a bench_orm workload, per function.

    python benchmarks/bench_orm_opcodes.py --dsn postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/bench_orm_opcodes.py --dsn ... --only transaction --ops 300 --top 40

Where ``bench_orm_instructions.py`` says how many CPU instructions an operation
costs, this says where the Python part goes: it runs ``bench_orm.py``'s own
workload code for both sides under a ``sys.settrace`` opcode tracer (after a
warm-up of 50 operations) and prints the bytecodes per operation by function,
luser_db minus raw asyncpg, largest difference first. The tracer slows the run
down a hundredfold; the counts do not depend on the machine's load. Run it with
``LUSER__CACHE__NOTIFY=false`` to leave out the query cache's background NOTIFYs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from collections import Counter
from types import FrameType
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import bench_orm  # noqa: E402
from bench_orm_instructions import _admin, _OneSide  # noqa: E402

WORKLOADS = ("transaction", "insert_single", "update_single", "get_by_pk")
Key = tuple[str, int, str]


def _tracer(counts: Counter[Key]) -> Any:
    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        if event == "opcode":
            code = frame.f_code
            counts[(os.path.basename(code.co_filename), code.co_firstlineno, code.co_name)] += 1
        return trace

    return trace


async def _count(dsn: str, workload: str, side: str, ops: int) -> Counter[Key]:
    sizes = bench_orm.Sizes(insert_single=ops, update_single=ops, get_by_pk=ops, transaction=ops)
    bench = _OneSide(dsn, sizes, side, 50)
    counts: Counter[Key] = Counter()
    await bench.open()
    try:
        seed = 0 if workload.startswith("insert") else 10_000
        await bench.reset_table(seed)
        await getattr(bench, workload)()  # warm-up: caches, prepared statements
        await bench.reset_table(seed)
        bench.ops = ops
        sys.settrace(_tracer(counts))
        try:
            await getattr(bench, workload)()
        finally:
            sys.settrace(None)
    finally:
        await bench.close()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", required=True, help="server URL; a scratch database is made")
    parser.add_argument("--only", nargs="*", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--ops", type=int, default=300, help="operations traced per side")
    parser.add_argument("--top", type=int, default=25, help="functions listed per workload")
    args = parser.parse_args()
    scratch = f"luser_bench_op_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(_admin(args.dsn, f'CREATE DATABASE "{scratch}"'))
    dsn = bench_orm.with_database(args.dsn, scratch)
    try:
        asyncio.run(_admin(dsn, bench_orm.TABLE_SQL))
        for workload in args.only:
            raw = asyncio.run(_count(dsn, workload, "raw", args.ops))
            orm = asyncio.run(_count(dsn, workload, "orm", args.ops))
            n = args.ops
            print(f"\n{workload}: raw {sum(raw.values()) / n:,.0f}, luser_db"
                  f" {sum(orm.values()) / n:,.0f} bytecodes per operation")  # fmt: skip
            diff = {k: (orm[k] - raw[k]) / n for k in raw.keys() | orm.keys()}
            ranked = sorted(diff.items(), key=lambda kv: -abs(kv[1]))[: args.top]
            for (file, line, name), d in ranked:
                print(f"  {d:+8.1f}  {file}:{line} {name}")
    finally:
        asyncio.run(_admin(args.dsn, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))


if __name__ == "__main__":
    main()

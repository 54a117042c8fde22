"""Cost per call: luser_db straight to PostgreSQL vs through PgBouncer (transaction mode).

    python benchmarks/bench_pgbouncer.py --dsn postgresql://postgres@127.0.0.1:5432/test

Starts its own PgBouncers (every version tests/luser_db/pgbouncer.py finds: the
system's 1.18 and scripts/build-pgbouncer's 1.24.1; as ``nobody`` when run as root)
in front of a scratch database it creates on ``--dsn``'s server, then times the same
calls, one after another (latency, not throughput), for each setup:

* ``direct``: luser_db's defaults (statement cache on);
* ``transaction <version>``: through each PgBouncer (unnamed statements);
* ``transaction_prepared <version>``: through each PgBouncer >= 1.21, with
  ``max_prepared_statements = 200`` (said so when none is found).

Each setup runs ``--rounds`` rounds of ``--calls`` calls per workload, alternating the
setups within a round; the median round is reported in microseconds per call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "luser_db"))

from pgbouncer import BUILD_HINT, binaries, run_pgbouncer  # noqa: E402

import luser_db  # noqa: E402
from luser_db import Db, transaction  # noqa: E402
from luser_db.testing import create_test_database, drop_test_database  # noqa: E402

WORKLOADS: dict[str, Callable[[int], Awaitable[object]]] = {}


def workload(fn: Callable[[int], Awaitable[object]]) -> Callable[[int], Awaitable[object]]:
    WORKLOADS[fn.__name__] = fn
    return fn


@workload
async def select_by_pk(i: int) -> object:
    return await Db.find_first("select id, name from bench_pgb where id = ?", i % 1000 + 1)


@workload
async def update_one(i: int) -> object:
    return await Db.execute("update bench_pgb set n = n + 1 where id = ?", i % 1000 + 1)


@workload
async def transaction_2_statements(i: int) -> object:
    async with transaction():
        await Db.find_first("select n from bench_pgb where id = ? for update", i % 1000 + 1)
        return await Db.execute("update bench_pgb set n = n + 1 where id = ?", i % 1000 + 1)


async def _time(calls: int) -> dict[str, float]:
    out = {}
    for name, fn in WORKLOADS.items():
        await fn(0)  # warm: pool open, statement prepared
        started = time.perf_counter()
        for i in range(calls):
            await fn(i)
        out[name] = (time.perf_counter() - started) / calls * 1e6
    return out


async def _run(setups: dict[str, dict[str, object]], calls: int, rounds: int) -> None:
    results: dict[str, dict[str, list[float]]] = {s: {w: [] for w in WORKLOADS} for s in setups}
    for _ in range(rounds):
        for setup, options in setups.items():
            luser_db.init(**options)  # type: ignore[arg-type]
            for name, micros in (await _time(calls)).items():
                results[setup][name].append(micros)
            await luser_db.close()
            luser_db.reset()
    direct = {w: statistics.median(v) for w, v in results["direct"].items()}
    print(f"\n| workload | {' | '.join(f'{s} µs/call' for s in setups)} |")
    print("|---|" + "---:|" * len(setups))
    for w in WORKLOADS:
        cells = []
        for setup in setups:
            micros = statistics.median(results[setup][w])
            ratio = "" if setup == "direct" else f" ({micros / direct[w]:.2f}x)"
            cells.append(f"{micros:,.0f}{ratio}")
        print(f"| {w} | {' | '.join(cells)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", default=os.environ.get("LUSER_TEST_DATABASE_URL"))
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not args.dsn:
        parser.error("--dsn (or LUSER_TEST_DATABASE_URL) is required")
    if not binaries():
        sys.exit(f"no pgbouncer found ({BUILD_HINT})")
    if not any(b.tracks_prepared_statements for b in binaries()):
        print(f"no PgBouncer >= 1.21: no transaction_prepared column ({BUILD_HINT})")
    url = create_test_database(args.dsn, prefix="luser_bench_pgb")
    try:
        setups: dict[str, dict[str, object]] = {"direct": {"url": url}}
        with ExitStack() as stack:
            for binary in binaries():
                version = ".".join(map(str, binary.version))
                prepared = binary.tracks_prepared_statements
                extra = "max_prepared_statements = 200\n" if prepared else ""
                bouncer = stack.enter_context(run_pgbouncer(url, binary, pool_size=4, extra=extra))
                bounced = bouncer.url_for(url)
                setups[f"transaction {version}"] = {"url": bounced, "pgbouncer": "transaction"}
                if prepared:
                    setups[f"transaction_prepared {version}"] = {
                        "url": bounced,
                        "pgbouncer": "transaction_prepared",
                    }
            asyncio.run(_prepare(url))
            asyncio.run(_run(setups, args.calls, args.rounds))
    finally:
        drop_test_database(args.dsn, url)


async def _prepare(url: str) -> None:
    luser_db.init(url)
    await Db.execute(
        "create table bench_pgb (id int primary key, name text not null, n int not null);"
        " insert into bench_pgb select i, 'user ' || i, 0 from generate_series(1, 1000) i"
    )
    await luser_db.close()
    luser_db.reset()


if __name__ == "__main__":
    main()

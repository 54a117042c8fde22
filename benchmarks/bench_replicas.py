"""Read throughput with one streaming replica vs the primary alone.

    python benchmarks/bench_replicas.py              # ~1 minute
    python benchmarks/bench_replicas.py --quick      # a sanity run

Builds a real primary + streaming standby from the embedded PostgreSQL binaries
(the same builder as the tests: ``tests/luser_db/standby.py``), fills a table, then
runs ``--workers`` concurrent tasks doing ``Model.find_by_id`` for ``--seconds`` in
three setups, alternately, best of ``--rounds``:

- ``primary``: no replicas configured (the plain executor path);
- ``replica``: ``replicas = [standby]`` (reads routed to the standby);
- ``pinned``: replicas configured, reads with ``using("primary")`` (the cost of the
  routing decision alone).

It prints reads/s, the client process's CPU time per read (where the routing
decision shows, whatever else the machine is doing) and how many of the reads
each server executed (luser_db's ``replica_stats()``), then stops both servers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "luser_db"))

from standby import Pair, start_pair  # noqa: E402

import luser_config  # noqa: E402
import luser_db  # noqa: E402
from luser_db import Field, Model  # noqa: E402


class BenchItem(Model, table="bench_replica_items"):
    id: int = Field(primary_key=True)
    name: str
    score: int


async def _setup(pair: Pair, rows: int) -> None:
    conn = await asyncpg.connect(pair.primary_url)
    try:
        await conn.execute(
            "create table bench_replica_items (id bigint primary key, name text, score int)"
        )
        await conn.copy_records_to_table(
            "bench_replica_items",
            records=[(i, f"item-{i}", i % 97) for i in range(1, rows + 1)],
        )
    finally:
        await conn.close()
    deadline = time.monotonic() + 60
    while True:  # wait until the standby has replayed the fill
        standby = await asyncpg.connect(pair.standby_url)
        try:
            count = await standby.fetchval(
                "select count(*) from bench_replica_items"
                " where to_regclass('bench_replica_items') is not null"
            )
        except asyncpg.UndefinedTableError:
            count = 0
        finally:
            await standby.close()
        if count == rows:
            return
        assert time.monotonic() < deadline, "the standby did not catch up"
        await asyncio.sleep(0.05)


async def _configure(config_dir: Path, pair: Pair, replicas: list[str]) -> None:
    (config_dir / "default.toml").write_text(
        "[database]\n"
        f'url = "{pair.primary_url}"\n'
        f"replicas = {replicas!r}\n"
        "max_connections = 10\nmin_connections = 10\n"
    )
    await luser_db.close()
    luser_db.reset()
    await luser_config.init_config(env="test", config_dir=config_dir)
    await luser_db.check_replicas()


async def _run(workers: int, seconds: float, rows: int, pinned: bool) -> int:
    query = BenchItem.using("primary") if pinned else BenchItem.query()
    stop = time.monotonic() + seconds
    done = 0

    async def worker() -> None:
        nonlocal done
        rnd = random.Random(os.getpid())
        while time.monotonic() < stop:
            item = await query.where(id=rnd.randint(1, rows)).first()
            assert item is not None
            done += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return done


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.rows = 1.0, 1, 1000
    pair = start_pair()
    try:
        await _setup(pair, args.rows)
        best: dict[str, float] = {}
        cpu: dict[str, float] = {}
        share: dict[str, tuple[int, int]] = {}
        setups = [
            ("primary", [], False),
            ("replica", [pair.standby_url], False),
            ("pinned", [pair.standby_url], True),
        ]
        with tempfile.TemporaryDirectory() as config_dir:
            for round_ in range(args.rounds):
                # Rotate the order: on a shared machine, the first run of a round is
                # not always the luckiest.
                for name, replicas, pinned in setups[round_ % 3 :] + setups[: round_ % 3]:
                    await _configure(Path(config_dir), pair, replicas)
                    started = time.process_time()
                    done = await _run(args.workers, args.seconds, args.rows, pinned)
                    per_read = (time.process_time() - started) / done * 1e6
                    on_standby = sum(s.reads for s in luser_db.replica_stats())
                    rate = done / args.seconds
                    cpu[name] = min(cpu.get(name, per_read), per_read)
                    if rate > best.get(name, 0):
                        best[name] = rate
                        share[name] = (done - on_standby, on_standby)
        await luser_db.close()
        luser_config.reset_config()
        base = best["primary"]
        print(f"{args.workers} workers, {args.rows} rows, best of {args.rounds} x {args.seconds}s")
        head = ("setup", "reads/s", "vs primary", "client CPU/read", "on primary", "on standby")
        print("{:<8} {:>9} {:>10} {:>15} {:>11} {:>11}".format(*head))
        for name, rate in best.items():
            on_primary, on_standby = share[name]
            line = (name, f"{rate:.0f}", f"{rate / base:.2f}", f"{cpu[name]:.1f} us")
            print("{:<8} {:>9} {:>10} {:>15} {:>11} {:>11}".format(*line, on_primary, on_standby))
    finally:
        pair.stop()


if __name__ == "__main__":
    asyncio.run(main())

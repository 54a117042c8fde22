"""Read replicas against a real streaming standby (built by ``standby.start_pair``).

Rows written straight to the primary while the standby's replay is paused exist on
the primary only: a read that does not see them ran on the standby.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

import luser_db
from luser_db import Db, Field, Model, ReadOnlyError, transaction

from .standby import Pair, start_pair

pytestmark = pytest.mark.slow  # builds a cluster: ~10-20 s on a busy machine

SCHEMA = """
create table rep_items (id bigserial primary key, name text not null);
create function rep_bump() returns bigint language sql
    as 'insert into rep_items (name) values (''bumped'') returning id';
"""


class Item(Model, table="rep_items"):
    id: int = Field(primary_key=True)
    name: str


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    cluster = start_pair()
    try:
        yield cluster
    finally:
        cluster.stop()


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 15) -> None:
    """Poll ``check`` until it holds (no sleeps as synchronisation: a deadline)."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _on(url: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(url)
    try:
        if not args and ";" in sql:
            return await conn.execute(sql)  # a script: simple protocol
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def schema(pair: Pair) -> str:
    await _on(pair.primary_url, SCHEMA)

    async def replicated() -> bool:
        return bool(await _on(pair.standby_url, "select to_regproc('rep_bump') is not null"))

    await _until(replicated, "the schema to reach the standby")
    return pair.primary_url


Configure = Callable[..., Awaitable[None]]


@pytest_asyncio.fixture(loop_scope="session")
async def configure(
    db_pool: str, schema: str, pair: Pair, tmp_path: Path
) -> AsyncIterator[Configure]:
    """``await configure(key=value, ...)``: the [database] section pointing at the pair."""
    import luser_config

    async def apply(replicas: list[str] | None = None, extra: str = "", **keys: Any) -> None:
        urls = [pair.standby_url] if replicas is None else replicas
        keys = {"min_connections": 0, **keys}
        lines = [f'url = "{pair.primary_url}"', f"replicas = {urls!r}"]
        lines += [f"{key} = {value!r}" for key, value in keys.items()]
        text = "[database]\n" + "\n".join(lines) + "\n" + extra
        (tmp_path / "default.toml").write_text(text)
        await luser_db.close()
        luser_db.reset()
        await luser_config.init_config(env="test", config_dir=tmp_path)

    try:
        yield apply
    finally:
        luser_config.reset_config()
        await luser_db.close()
        luser_db.reset()
        luser_db.init(db_pool, min_size=1, max_size=10)
        if not (pair.root / "standby" / "postmaster.pid").exists():
            pair.start_standby()
        await _on(pair.standby_url, "select pg_wal_replay_resume()")


async def _in_recovery(db: Any = Db) -> bool:
    rec = await db.find_first("select pg_is_in_recovery() as r")
    return bool(rec.r)


async def _pause_and_write(pair: Pair, name: str) -> int:
    """Pause the standby's replay, then insert a row on the primary only (not via luser)."""
    await _on(pair.standby_url, "select pg_wal_replay_pause()")
    return int(
        await _on(pair.primary_url, "insert into rep_items (name) values ($1) returning id", name)
    )


def _stats() -> list[luser_db.ReplicaStats]:
    return luser_db.replica_stats()


async def test_reads_go_to_the_standby_writes_and_pinned_reads_to_the_primary(
    pair: Pair, configure: Configure
) -> None:
    await configure(max_lag_ms=600_000, replica_check_ms=60_000)
    await luser_db.check_replicas()
    assert await _in_recovery()
    assert not await _in_recovery(Db.use("primary"))
    id_ = await _pause_and_write(pair, "primary-only")
    await luser_db.check_replicas()  # lag now > 0 but far below max_lag_ms: still usable

    # Every kind of read outside a transaction misses the row: it ran on the standby.
    assert await Item.find_by_id(id_) is None
    assert await Item.query().where(name="primary-only").first() is None
    assert await Item.query().where(name="primary-only").all() == []
    assert await Item.query().where(name="primary-only").count() == 0
    assert (await Item.query().where(name="primary-only").paginate(1, 10)).total_row == 0
    assert [i async for i in Item.query().where(name="primary-only").iterate()] == []
    assert await Item.find("select * from rep_items where id = ?", id_) == []
    assert await Db.find("select * from rep_items where id = ?", id_) == []
    assert await Db.query_int("select count(*) from rep_items where id = ?", id_) == 0

    # Opted out, or inside a transaction: the primary sees it.
    assert (await Item.using("primary").where(id=id_).first()) is not None
    assert [i.id async for i in Item.using("primary").where(id=id_).iterate()] == [id_]
    assert (
        await Db.use("primary").query_int("select count(*) from rep_items where id = ?", id_) == 1
    )
    async with transaction():
        assert await Item.find_by_id(id_) is not None
        assert not await _in_recovery()
    async with Db.use("primary").transaction():
        assert not await _in_recovery()
    assert sum(s.reads for s in _stats()) >= 9


async def test_sticky_after_write_300_of_300(pair: Pair, configure: Configure) -> None:
    await configure(max_lag_ms=600_000, replica_check_ms=60_000, sticky_after_write_ms=60_000)
    await luser_db.check_replicas()
    await _pause_and_write(pair, "pause")  # the standby sees none of what follows
    seen = 0
    for i in range(300):
        item = Item(name=f"sticky-{i}")
        await item.save()
        seen += await Item.find_by_id(item.id) is not None
    assert seen == 300
    async with transaction():
        await Item(name="in-tx").save()
    assert await Item.query().where(name="in-tx").first() is not None
    assert await _in_recovery(Db.use("primary")) is False


async def test_sticky_is_per_context_and_window(pair: Pair, configure: Configure) -> None:
    await configure(max_lag_ms=600_000, replica_check_ms=60_000, sticky_after_write_ms=300)
    await luser_db.check_replicas()
    await _pause_and_write(pair, "pause")

    async def write() -> int:
        item = Item(name="other-task")
        await item.save()
        return item.id

    id_ = await asyncio.create_task(write())  # that task's context, not ours
    assert await Item.find_by_id(id_) is None
    await Item(name="ours").save()
    assert await Item.query().where(name="ours").first() is not None

    async def window_over() -> bool:
        return await Item.query().where(name="ours").first() is None

    await _until(window_over, "the 300 ms sticky window to end")

    # A transaction longer than the window: the window counts from its commit.
    async with transaction():
        await Item(name="long-tx").save()
        await Db.execute("select pg_sleep(0.5)")  # the transaction outlives the window
    assert await Item.query().where(name="long-tx").first() is not None


async def test_sticky_window_zero_is_off(pair: Pair, configure: Configure) -> None:
    await configure(max_lag_ms=600_000, replica_check_ms=60_000, sticky_after_write_ms=0)
    await luser_db.check_replicas()
    await _pause_and_write(pair, "pause")
    item = Item(name="not-sticky")
    await item.save()
    assert await Item.find_by_id(item.id) is None


async def test_lag_is_measured_on_a_schedule_not_per_query(
    pair: Pair, configure: Configure
) -> None:
    await configure(max_lag_ms=0, replica_check_ms=60_000)
    await luser_db.check_replicas()
    assert await _in_recovery()
    await _pause_and_write(pair, "lagging")
    # The cached measurement (lag 0) stands until the next check is due.
    for _ in range(20):
        assert await _in_recovery()
    await luser_db.check_replicas()
    assert [s.lag_ms is not None and s.lag_ms > 0 for s in _stats()] == [True]
    before = _stats()[0].primary_fallbacks
    assert not await _in_recovery()
    assert _stats()[0].primary_fallbacks == before + 1


async def test_lag_guard_sends_reads_to_the_primary_and_back(
    pair: Pair, configure: Configure
) -> None:
    await configure(max_lag_ms=200, replica_check_ms=50)
    await luser_db.check_replicas()
    assert await _in_recovery()
    id_ = await _pause_and_write(pair, "lag-guard")

    async def on_primary() -> bool:
        return await Item.find_by_id(id_) is not None

    await _until(on_primary, "reads to leave the lagging standby")
    assert _stats()[0].primary_fallbacks >= 1
    await _on(pair.standby_url, "select pg_wal_replay_resume()")
    await _until(_in_recovery, "reads to return to the standby once it caught up")


async def test_standby_down_reads_use_the_primary_and_are_counted(
    pair: Pair, configure: Configure
) -> None:
    await configure(max_lag_ms=600_000, replica_check_ms=60_000, min_connections=1)
    await luser_db.check_replicas()
    assert await _in_recovery()  # a pooled connection to the standby is now open
    pair.stop_standby()
    # The pooled connection is dead: the read finds out, marks the standby down, and
    # runs on the primary instead of failing.
    assert not await _in_recovery()
    stats = _stats()[0]
    assert stats.up is False and stats.failures == 1 and stats.primary_fallbacks >= 1
    for _ in range(5):
        assert not await _in_recovery()
    assert _stats()[0].primary_fallbacks >= stats.primary_fallbacks + 5
    await luser_db.check_replicas()  # still down
    assert _stats()[0].up is False
    total = await Db.use("primary").query_int("select count(*) from rep_items")
    assert await Item.query().count() == total  # builder reads too, from the primary
    pair.start_standby()
    await luser_db.check_replicas()
    assert _stats()[0].up is True
    assert await _in_recovery()


async def test_a_write_that_reaches_the_standby_is_read_only_503(configure: Configure) -> None:
    await configure(max_lag_ms=600_000, replica_check_ms=60_000)
    await luser_db.check_replicas()
    # Looks like a read, writes through a function: the standby refuses it.
    with pytest.raises(ReadOnlyError) as info:
        await Db.find_first("select rep_bump() as id")
    assert info.value.status_code == 503 and info.value.code == "READ_ONLY"
    assert _stats()[0].up is True  # not the replica's fault: it stays in rotation
    assert (await Db.use("primary").find_first("select rep_bump() as id")).id > 0


async def test_round_robin_and_least_busy(pair: Pair, configure: Configure) -> None:
    twice = [pair.standby_url, pair.standby_url]
    await configure(replicas=twice, max_lag_ms=600_000, replica_check_ms=60_000)
    await luser_db.check_replicas()
    for _ in range(20):
        assert await _in_recovery()
    assert [s.reads for s in _stats()] == [10, 10]

    await configure(
        replicas=twice,
        max_lag_ms=600_000,
        replica_check_ms=60_000,
        replica_strategy="least_busy",
    )
    await luser_db.check_replicas()
    started = asyncio.Event()

    async def hold() -> None:
        # A read that stays in flight on its replica until the test cancels it.
        started.set()
        await Db.find_first("select pg_sleep(30) as s")

    task = asyncio.create_task(hold())
    await started.wait()

    async def one_busy() -> bool:
        return sorted(s.in_flight for s in _stats()) == [0, 1]

    await _until(one_busy, "one replica to be busy")
    busy = next(i for i, s in enumerate(_stats()) if s.in_flight)
    before = [s.reads for s in _stats()]
    for _ in range(10):
        assert await _in_recovery()
    after = [s.reads for s in _stats()]
    assert after[busy] == before[busy] and after[1 - busy] == before[1 - busy] + 10
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_named_source_routes_to_its_own_replicas(pair: Pair, configure: Configure) -> None:
    reports = (
        "[database.data_sources.reports]\n"
        f'url = "{pair.primary_url}"\nmin_connections = 0\n'
        f'replicas = ["{pair.standby_url}"]\nreplica_check_ms = 60000\n'
    )
    await configure(replicas=[], extra=reports)
    assert not await _in_recovery()  # the default source lists no replicas here
    await luser_db.check_replicas("reports")
    assert await _in_recovery(Db.use("reports"))
    assert not await _in_recovery(Db.use("reports:primary"))
    assert [(s.source, s.replica, s.reads) for s in _stats()] == [
        ("reports", "reports@replica1", 1)
    ]

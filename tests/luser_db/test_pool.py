"""Pools: lazy init from config, one pool under concurrent first use, close/reset, cancellation,
recovery after dropped connections, fail-fast outages, named data sources, fast release."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

import luser_db
from luser_common import DatabaseUnavailable
from luser_db import Db, transaction
from luser_db import _pool as pool_module

pytestmark = pytest.mark.usefixtures("orm_schema")


@pytest_asyncio.fixture(loop_scope="session")
async def own_pool(db_pool: str) -> AsyncIterator[str]:
    """Tests here close and rebuild the global pool; leave it as db_pool set it."""
    await luser_db.close()
    luser_db.reset()
    try:
        yield db_pool
    finally:
        await luser_db.close()
        luser_db.reset()
        luser_db.init(db_pool, min_size=1, max_size=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_use_after_close_is_a_clear_503(own_pool: str) -> None:
    luser_db.init(own_pool)
    assert await Db.query_int("select 1") == 1
    await luser_db.close()
    with pytest.raises(DatabaseUnavailable) as info:
        await Db.query_int("select 1")
    assert "关闭" in info.value.message
    with pytest.raises(DatabaseUnavailable):
        async with transaction():
            pass
    luser_db.init(own_pool)  # init() reopens lazily
    assert await Db.query_int("select 2") == 2


async def test_a_pool_opening_during_close_is_not_installed(
    own_pool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A background query's first use races close(): the pool it was opening is
    discarded, so later use still gets the clear 503 instead of a live pool."""
    luser_db.init(own_pool)
    opening, resume = asyncio.Event(), asyncio.Event()
    real_open = pool_module._open

    async def held_open(name: str) -> asyncpg.Pool:
        pool = await real_open(name)  # a real pool to the real server
        opening.set()
        await resume.wait()
        return pool

    monkeypatch.setattr(pool_module, "_open", held_open)
    first_use = asyncio.create_task(Db.query_int("select 1"))
    await opening.wait()
    await luser_db.close()
    resume.set()
    with pytest.raises(DatabaseUnavailable):
        await first_use
    assert pool_module.pools == {}
    with pytest.raises(DatabaseUnavailable):
        await Db.query_int("select 1")


async def test_concurrent_first_use_creates_one_pool(own_pool: str) -> None:
    luser_db.init(own_pool, min_size=0, max_size=4)
    created: list[object] = []
    real_create = asyncpg.create_pool

    async def counting_create(*args: object, **kwargs: object) -> asyncpg.Pool:
        await asyncio.sleep(0.05)  # widen the race window
        pool = await real_create(*args, **kwargs)  # type: ignore[arg-type]
        created.append(pool)
        return pool

    pool_module.asyncpg.create_pool = counting_create  # type: ignore[assignment]
    try:
        results = await asyncio.gather(*(Db.query_int("select ?::int", i) for i in range(20)))
    finally:
        pool_module.asyncpg.create_pool = real_create
    assert results == list(range(20))
    assert len(created) == 1


async def test_lazy_pool_from_config_and_named_source(own_pool: str, tmp_path: Path) -> None:
    import luser_config

    (tmp_path / "default.toml").write_text(
        f'[database]\nurl = "{own_pool}"\nmax_connections = 3\nmin_connections = 0\n'
        f'[database.data_sources.replica]\nurl = "{own_pool}"\nmax_connections = 2\n'
        "min_connections = 0\npgbouncer = true\n"
    )
    await luser_config.init_config(env="test", config_dir=tmp_path)
    try:
        assert await Db.query_int("select 41 + 1") == 42
        primary = await luser_db.get_pool()
        assert primary.get_max_size() == 3
        rec = await Db.use("replica").find_first("select current_database() as db")
        assert rec is not None and f"/{rec.db}" in own_pool
        replica = await luser_db.get_pool("replica")
        assert replica is not primary and replica.get_max_size() == 2
        # PgBouncer switch: no prepared-statement cache on that source.
        async with replica.acquire() as conn:
            assert conn._con._stmt_cache.get_max_size() == 0  # type: ignore[attr-defined]
        with pytest.raises(Exception) as info:
            await Db.use("nope").find("select 1")
        assert info.value.__class__.__name__ == "ConfigError"
    finally:
        luser_config.reset_config()


async def test_unreachable_database_fails_fast_with_503(own_pool: str) -> None:
    luser_db.init(f"postgresql://postgres@127.0.0.1:{_free_port()}/x", min_size=0, timeout=2)
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(DatabaseUnavailable):
        await Db.query_int("select 1")
    with pytest.raises(DatabaseUnavailable):
        await Db.query_int("select 1")
    assert loop.time() - start < 5  # generous: failing fast means not hanging


async def test_acquire_timeout_is_503(own_pool: str) -> None:
    luser_db.init(own_pool, min_size=1, max_size=1, acquire_timeout=0.2)
    pool = await luser_db.get_pool()
    held = await pool.acquire()
    try:
        with pytest.raises(DatabaseUnavailable) as info:
            await Db.query_int("select 1")
        assert "超时" in info.value.message
    finally:
        await pool.release(held)
    assert await Db.query_int("select 1") == 1


async def test_cancellation_returns_connections(own_pool: str) -> None:
    luser_db.init(own_pool, min_size=0, max_size=2)
    pool = await luser_db.get_pool()

    async def slow() -> None:
        await Db.execute("select pg_sleep(5)")

    async def slow_tx() -> None:
        async with transaction():
            await Db.execute("select pg_sleep(5)")

    tasks = [asyncio.create_task(slow()), asyncio.create_task(slow_tx())]
    await asyncio.sleep(0.3)
    for t in tasks:
        t.cancel()
    for t in tasks:
        with pytest.raises(asyncio.CancelledError):
            await t
    for _ in range(50):
        if pool.get_idle_size() == pool.get_size():
            break
        await asyncio.sleep(0.05)
    assert pool.get_idle_size() == pool.get_size()
    results = await asyncio.gather(*(Db.query_int("select ?::int", i) for i in range(4)))
    assert results == [0, 1, 2, 3]


async def test_pool_recovers_after_connections_are_dropped(own_pool: str) -> None:
    luser_db.init(own_pool, min_size=2, max_size=2)
    await Db.query_int("select 1")
    admin = await asyncpg.connect(own_pool)
    try:
        await admin.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity"
            " where datname = current_database() and pid <> pg_backend_pid()"
            " and application_name = ''"
        )
    finally:
        await admin.close()
    await asyncio.sleep(0.1)
    outcomes = []
    for _ in range(4):
        try:
            outcomes.append(await Db.query_int("select 7"))
        except DatabaseUnavailable:
            outcomes.append("503")
    assert outcomes[-1] == 7
    assert all(o in (7, "503") for o in outcomes)


async def test_fast_release_still_clears_session_state(own_pool: str) -> None:
    luser_db.init(own_pool, min_size=1, max_size=1)
    await Db.execute("set application_name = 'dirty'")
    assert await Db.query_str("show application_name") == ""
    await Db.find("select set_config('application_name', 'dirty2', false)")
    assert await Db.query_str("show application_name") == ""
    async with transaction():  # a plain SET outlives the transaction that ran it
        await Db.execute("set application_name = 'dirty3'")
    assert await Db.query_str("show application_name") == ""
    # Connections used straight from the pool get the full reset: we cannot see their SQL.
    pool = await luser_db.get_pool()
    async with pool.acquire() as conn:
        await conn.execute("set application_name = 'direct'")
    assert await Db.query_str("show application_name") == ""
    # A connection released mid-transaction (cancelled) is rolled back by the reset.
    async with pool.acquire() as conn:
        await conn.execute("begin")
    async with pool.acquire() as conn:
        assert not conn.is_in_transaction()


async def test_driver_connections_reset_unless_declared_stateless(own_pool: str) -> None:
    luser_db.init(own_pool, min_size=1, max_size=1)  # one connection: each block reuses it
    async with luser_db.connection() as conn:
        await conn.execute("set application_name = 'driver'")
    assert await Db.query_str("show application_name") == ""  # full reset on release
    async with luser_db.connection(stateless=True) as conn:
        default = await conn.fetchval("show work_mem")
        await conn.execute("select set_config('work_mem', '7MB', true)")  # local: allowed
        assert await conn.fetchval("show work_mem") == default != "7MB"
        # Breaking the promise shows the reset round trip really is skipped:
        await conn.execute("set application_name = 'kept'")
    assert await Db.query_str("show application_name") == "kept"
    async with luser_db.connection(stateless=True) as conn:
        await conn.execute("begin")  # released mid-transaction: rolled back regardless
    async with luser_db.connection() as conn:
        assert not conn.is_in_transaction()
        await conn.execute("reset all")


async def test_each_event_loop_gets_its_own_pool(own_pool: str) -> None:
    # e.g. Starlette's TestClient runs the app on a fresh loop in another thread.
    luser_db.init(own_pool, min_size=1, max_size=2)
    assert await Db.query_int("select 1") == 1
    first = await luser_db.get_pool()

    async def other() -> tuple[int | None, bool]:
        value = await Db.query_int("select 2")
        return value, (await luser_db.get_pool()) is first

    def in_other_loop() -> tuple[int | None, bool]:
        return asyncio.run(other())

    assert await asyncio.to_thread(in_other_loop) == (2, False)
    assert await Db.query_int("select 3") == 3
    assert await luser_db.get_pool() is first  # the first loop's pool was kept for it
    assert await asyncio.to_thread(in_other_loop) == (2, False)


async def test_init_replaces_an_open_pool(own_pool: str) -> None:
    luser_db.init(own_pool, max_size=2)
    old = await luser_db.get_pool()
    luser_db.init(own_pool, max_size=3)
    new = await luser_db.get_pool()
    assert new is not old and new.get_max_size() == 3
    # The old pool closes in a background task: wait for it, with a deadline.
    async with asyncio.timeout(5):
        while not old._closed:  # type: ignore[attr-defined]
            await asyncio.sleep(0)  # a loop tick, so the closing task can run


async def test_clean_release_needs_no_shield_task(
    own_pool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clean ORM connection goes back without asyncpg's shield Task; a dirty one still
    takes asyncpg's release (and its reset round trip)."""
    luser_db.init(own_pool, min_size=1, max_size=1)
    await Db.query_int("select 1")  # open the pool outside the count
    shields = []
    real_shield = asyncio.shield

    def counting(arg: Any) -> Any:
        shields.append(arg)
        return real_shield(arg)

    monkeypatch.setattr(asyncio, "shield", counting)
    pool = await luser_db.get_pool()
    for n in range(3):
        assert await Db.query_int("select $1::int", n) == n
        assert pool.get_idle_size() == 1  # returned at once
    async with transaction():
        await Db.query_int("select 1")
    assert shields == []
    await Db.execute("set application_name = 'dirty'")
    assert len(shields) == 1
    assert await Db.query_str("show application_name") == ""


def test_asyncpg_still_has_what_the_in_place_pool_steps_use() -> None:
    # _pool.acquire/_release_in_place run asyncpg's pool steps themselves; an asyncpg
    # without one of them must be noticed here, not by a slower fallback nobody sees.
    assert pool_module.IN_PLACE_POOL


async def test_transactions_send_on_the_driver_connection_behind_the_proxy(own_pool: str) -> None:
    luser_db.init(own_pool, min_size=1, max_size=1)
    pool = await luser_db.get_pool()
    proxy = await pool.acquire()
    try:
        driver = pool_module.driver_connection(proxy)
        assert driver is not proxy and isinstance(driver, asyncpg.Connection)
        assert driver is proxy._con  # type: ignore[attr-defined]  # what asyncpg lends
    finally:
        await pool.release(proxy)
    assert pool_module.driver_connection(driver) is driver  # no proxy: itself


async def test_in_place_release_returns_the_connection_as_asyncpg_would(own_pool: str) -> None:
    luser_db.init(own_pool, min_size=0, max_size=1, max_inactive_connection_lifetime=300)
    assert await Db.query_int("select 1") == 1
    pool = await luser_db.get_pool()
    [holder] = pool._holders  # type: ignore[attr-defined]
    for n in range(3):
        async with transaction():
            assert await Db.query_int("select $1::int", n) == n
            assert pool.get_idle_size() == 0 and holder._in_use is not None  # lent out
            assert holder._inactive_callback is None  # idle timer off while lent out
        assert pool.get_idle_size() == 1  # back in the queue
        assert holder._in_use is None and holder._proxy is None  # the proxy detached
        assert holder._inactive_callback is not None  # the idle timer armed again
        assert not holder._con._luser_managed and not holder._con._luser_dirty
    conn = await pool.acquire()
    try:
        assert holder._inactive_callback is None  # disarmed while lent out
    finally:
        await pool.release(conn)


async def test_init_while_a_pool_opens_keeps_no_pool_with_the_old_url(
    own_pool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first query opening the pool races init() pointing the ORM elsewhere (a
    background task of a long-lived app, a test that repoints the ORM): the pool opened
    with the old settings must not become the pool of the new ones."""
    from luser_db.embedded import with_database

    real_open = pool_module._open
    opened, go_on = asyncio.Event(), asyncio.Event()

    async def open_then_wait(name: str) -> Any:
        pool = await real_open(name)  # opened with the settings of this moment
        opened.set()
        await go_on.wait()
        return pool

    monkeypatch.setattr(pool_module, "_open", open_then_wait)
    luser_db.init(with_database(own_pool, "postgres"), min_size=0, max_size=2)
    first_query = asyncio.create_task(Db.query_str("select current_database()"))
    async with asyncio.timeout(10):
        await opened.wait()
    luser_db.init(own_pool, min_size=0, max_size=2)  # repointed while the pool opened
    go_on.set()
    async with asyncio.timeout(10):
        await first_query
    assert await Db.query_str("select current_database()") != "postgres"

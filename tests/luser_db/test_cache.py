"""The query cache on real PostgreSQL: hits, automatic invalidation by every write path,
commit/rollback, the off switch, bad input. Cross-process and Redis: test_cache_shared.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
import pytest_asyncio

import luser_db
from luser_common import ValidationError
from luser_db import Db, Field, Model, cache, transaction
from luser_db._cache_tables import read_tables, write_tables
from luser_db.testing import assert_queries

pytestmark = pytest.mark.usefixtures("clean_tables")


class CUser(Model, table="orm.users"):
    id: int = Field(primary_key=True)
    name: str
    email: str
    age: int = 0


class Counter(Model, table="orm.counters"):
    id: int = Field(primary_key=True)
    n: int = 0


@pytest_asyncio.fixture(loop_scope="session", autouse=True)
async def fresh_cache() -> AsyncIterator[None]:
    cache.reset()
    cache.configure(enabled=True, backend="memory", notify=False, max_entries=1000)
    yield
    cache.reset()


async def _user(name: str, age: int = 20) -> CUser:
    user = CUser(name=name, email=f"{name}@example.com", age=age)
    await user.save()
    return user


def _adults() -> Any:
    return CUser.query().where("age >= ?", 18).order_by("id").cache("adults", ttl=600)


async def test_all_first_count_paginate_are_served_from_the_cache() -> None:
    await _user("ann")
    await _user("bob")
    first = [u.name for u in await _adults().all()]
    assert (await _adults().first()) is not None
    assert await _adults().count() == 2
    page = await _adults().paginate(1, 1)
    with assert_queries(0):
        assert [u.name for u in await _adults().all()] == first == ["ann", "bob"]
        found = await _adults().first()
        assert found is not None and found.name == "ann"
        assert await _adults().count() == 2
        again = await _adults().paginate(1, 1)
    assert (again.total_row, [u.name for u in again.items]) == (2, [u.name for u in page.items])
    stats = cache.stats()
    assert stats.hits["adults"] == 4 and stats.misses["adults"] == 4


async def test_hits_return_fresh_models_not_shared_ones() -> None:
    await _user("ann")
    (one,) = await _adults().all()
    one.name = "changed in memory"
    (two,) = await _adults().all()
    assert two.name == "ann"


Write = Callable[[], Coroutine[Any, Any, Any]]


async def _assert_evicts(write: Write, expected: list[str]) -> None:
    """``write`` must evict the cached adults list: the next call queries and sees it."""
    await _adults().all()
    with assert_queries(0):
        await _adults().all()  # cached
    await write()
    with assert_queries(1):
        assert sorted(u.name for u in await _adults().all()) == expected


async def test_model_save_update_delete_evict() -> None:
    ann = await _user("ann")
    await _assert_evicts(lambda: _user("bob"), ["ann", "bob"])

    async def rename() -> None:
        ann.name = "anna"
        await ann.update()

    await _assert_evicts(rename, ["anna", "bob"])
    await _assert_evicts(ann.delete, ["bob"])


async def test_builder_update_delete_and_model_bulk_paths_evict() -> None:
    await _user("ann")
    await _assert_evicts(lambda: CUser.query().where(name="ann").update(age=30), ["ann"])
    await _assert_evicts(lambda: CUser.query().where(name="ann").delete(), [])
    rows = [CUser(name=n, email=f"{n}@e.com", age=40) for n in ("c1", "c2")]
    await _assert_evicts(lambda: CUser.batch_save(rows), ["c1", "c2"])
    again = CUser(name="c3", email="c1@e.com", age=41)
    await _assert_evicts(lambda: again.upsert("email"), ["c2", "c3"])


async def test_raw_sql_and_copy_evict() -> None:
    await _assert_evicts(
        lambda: Db.execute("insert into orm.users (name, email, age) values ('r', 'r@e', 50)"),
        ["r"],
    )
    await _assert_evicts(
        lambda: Db.copy_records("orm.users", [("k", "k@e", 60)], columns=("name", "email", "age")),
        ["k", "r"],
    )
    await _assert_evicts(lambda: Db.execute("truncate orm.users cascade"), [])


async def test_raw_sql_declares_tables_the_parser_cannot_see() -> None:
    await Db.execute(
        "create or replace function orm.add_user(n text) returns void language sql"
        " as $$ insert into orm.users (name, email, age) values (n, n || '@e', 33) $$"
    )
    await _user("ann")
    await _adults().all()
    await Db.execute("select orm.add_user('hidden')")  # a function: no table to parse
    with assert_queries(0):
        assert len(await _adults().all()) == 1  # stale, as documented
    await Db.execute("select orm.add_user(?)", "seen", tables=("orm.users",))
    assert sorted(u.name for u in await _adults().all()) == ["ann", "hidden", "seen"]


async def test_a_committed_transaction_evicts_at_commit_a_rolled_back_one_never() -> None:
    await _user("ann")
    await _adults().all()
    before = cache.stats().invalidations
    with pytest.raises(RuntimeError):
        async with transaction():
            await _user("ghost")
            raise RuntimeError("roll back")
    assert cache.stats().invalidations == before
    with assert_queries(0):
        await _adults().all()  # still cached: the rollback evicted nothing
    async with transaction():
        await _user("bob")
        await CUser.query().where(name="bob").update(age=21)
        assert cache.stats().invalidations == before  # not before the commit
        # Inside a transaction the cache is bypassed: it sees its own write.
        assert len(await _adults().all()) == 2
    assert cache.stats().invalidations == before + 1  # one announcement per transaction
    assert sorted(u.name for u in await _adults().all()) == ["ann", "bob"]


async def test_a_savepoint_that_rolls_back_takes_its_writes_out_of_the_announcement() -> None:
    await _user("ann")
    await _adults().all()
    await Counter(id=1, n=1).save()
    before = cache.stats().invalidations
    async with transaction():
        with pytest.raises(RuntimeError):
            async with transaction():
                await _user("ghost")  # orm.users, rolled back with the savepoint
                raise RuntimeError("roll back the savepoint")
        async with transaction():
            await Counter.query().where(id=1).update(n=2)  # released into the outer block
    assert cache.stats().invalidations == before + 1
    with assert_queries(0):
        await _adults().all()  # orm.users was not announced: still cached
    async with transaction():
        async with transaction():
            await _user("bob")  # released: announced at the outer commit
        assert cache.stats().invalidations == before + 1
    assert cache.stats().invalidations == before + 2
    assert sorted(u.name for u in await _adults().all()) == ["ann", "bob"]


async def test_other_tables_writes_do_not_evict() -> None:
    await _user("ann")
    await _adults().all()
    await Counter(id=1, n=1).save()
    with assert_queries(0):
        await _adults().all()


async def test_db_find_by_cache_and_paginate_by_cache() -> None:
    await _user("ann")
    sql = "select name from orm.users where age > ? order by id"
    assert [r.name for r in await Db.find_by_cache("names", "adults", sql, 10)] == ["ann"]
    page = await Db.paginate_by_cache("names", "p", 1, 10, "select name", "from orm.users")
    with assert_queries(0):
        assert [r.name for r in await Db.find_by_cache("names", "adults", sql, 10)] == ["ann"]
        again = await Db.paginate_by_cache("names", "p", 1, 10, "select name", "from orm.users")
    assert again.total_row == page.total_row == 1
    # Same key, other parameters: never another query's result.
    assert await Db.find_by_cache("names", "adults", sql, 90) == []
    await _user("bob")
    assert len(await Db.find_by_cache("names", "adults", sql, 10)) == 2


async def test_disabled_cache_is_a_plain_query_and_installs_no_hook() -> None:
    cache.configure(enabled=False)
    await _user("ann")
    for _ in range(2):
        with assert_queries(1):
            await _adults().all()
    assert cache.stats().hits == {} and cache.stats().misses == {}
    assert luser_db._exec.written_tables is None


async def test_lru_bound_evicts_the_oldest() -> None:
    cache.configure(max_entries=2)
    await _user("ann")
    for age in (1, 2, 3):
        await CUser.query().where("age >= ?", age).cache("lru").all()
    assert cache.stats().evictions == 1
    with assert_queries(1):
        await CUser.query().where("age >= ?", 1).cache("lru").all()  # the evicted one


async def test_bad_input() -> None:
    for name in ("", "1abc", "has space", "x" * 65, None, "a:b"):
        with pytest.raises(ValidationError) as info:
            CUser.query().cache(name)  # type: ignore[arg-type]
        assert info.value.field == "cache_name"
    for ttl in (0, -1, 10**9, "60", True):
        with pytest.raises(ValidationError):
            CUser.query().cache("ok", ttl=ttl)  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as info:
        await Db.find_by_cache("bad name", "k", "select 1")
    with pytest.raises(ValidationError) as info:
        await Db.find_by_cache("nofrom", "k", "select 1")
    assert info.value.field == "tables"
    with pytest.raises(ValidationError):
        cache.configure(backend="memcached")
    with pytest.raises(ValidationError):
        cache.configure(size=3)


async def test_long_keys_are_hashed() -> None:
    await _user("ann")
    long_key = "k" * 300
    key = cache.key_for("names", long_key, "x")
    assert len(key.encode()) < 120 and long_key not in key
    sql = "select name from orm.users"
    assert len(await Db.find_by_cache("names", long_key, sql)) == 1
    with assert_queries(0):
        assert len(await Db.find_by_cache("names", long_key, sql)) == 1


def test_equal_but_different_parameters_get_different_keys() -> None:
    keys = {cache.key_for("n", "k", "select ?", p) for p in (1, 1.0, True, "1")}
    assert len(keys) == 4


def test_table_parsing() -> None:
    assert read_tables('SELECT "id" FROM "orm"."Users" u JOIN videos v ON v.u = u.id') >= {
        "users",
        "videos",
    }
    assert read_tables("select * from (select 1 from counters) q, kinds") >= {"counters", "kinds"}
    assert write_tables('INSERT INTO "orm"."users" (a) VALUES ($1)') == {"users"}
    assert write_tables("update only orm.users set a = 1") == {"users"}
    assert write_tables("delete from users where id = 1") == {"users"}
    assert write_tables("with d as (delete from a returning *) insert into b select * from d") == {
        "a",
        "b",
    }
    assert write_tables("TRUNCATE TABLE a, orm.b RESTART IDENTITY") == {"a", "b"}
    assert write_tables("COPY orm.users") == {"users"}
    assert write_tables("COPY (select 1) TO STDOUT") == set()
    assert write_tables("select * from users for update") == set()
    assert write_tables("DO $$ begin perform 1; end $$") == {"*"}
    assert write_tables("-- note\nupdate users set a = 1") == {"users"}


async def test_writes_on_a_lent_connection_evict_also_after_a_manual_commit() -> None:
    await _user("ann")
    async with luser_db.connection() as conn:
        await _adults().all()
        await conn.execute("begin")
        await conn.execute("insert into orm.users (name, email, age) values ('m', 'm@e', 30)")
        await _adults().all()  # another reader caches what is committed so far: one row
        await conn.execute("commit")  # the insert becomes visible: evicted again
    assert sorted(u.name for u in await _adults().all()) == ["ann", "m"]
    async with transaction(), luser_db.connection() as conn:
        await conn.execute("insert into orm.users (name, email, age) values ('t', 't@e', 30)")
    assert sorted(u.name for u in await _adults().all()) == ["ann", "m", "t"]


async def test_writes_in_the_quiet_interval_after_a_notify_go_out_in_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An isolated write is announced to other processes at once; the writes that follow
    within NOTIFY_INTERVAL wait and share one NOTIFY (a long interval here, so only
    close(), which flushes them, ends it)."""
    monkeypatch.setattr(cache, "NOTIFY_INTERVAL", 3600.0)
    cache.configure(notify=True)
    got: asyncio.Queue[luser_db.Notification] = asyncio.Queue()
    listener = await luser_db.listen(cache.CHANNEL, got.put_nowait)
    try:
        await _user("ann")
        note = await asyncio.wait_for(got.get(), 10)
        assert note.payload.split(" ", 1)[1] == "users"
        await _user("bob")
        await Counter(id=1, n=1).save()
        await luser_db.notify(cache.CHANNEL, "marker")
        note = await asyncio.wait_for(got.get(), 10)
        assert note.payload == "marker"  # neither write was announced yet
        await cache.close()
        note = await asyncio.wait_for(got.get(), 10)
        assert note.payload.split(" ", 1)[1] == "counters,users"
    finally:
        await listener.close()

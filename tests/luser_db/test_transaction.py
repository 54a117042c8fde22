"""transaction(): joining, savepoints, callbacks, isolation, shared-task detection, retry, Db.tx."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from luser_common import AppError, Conflict, InternalServerError, ValidationError
from luser_db import (
    Db,
    Field,
    Model,
    ReadOnlyError,
    SharedConnectionError,
    current_connection,
    in_transaction,
    on_commit,
    on_rollback,
    retry_transaction,
    transaction,
    transactional,
)

pytestmark = pytest.mark.usefixtures("clean_tables")


class Counter(Model, table="orm.counters"):
    id: int = Field(primary_key=True, generated=False)
    n: int = 0


async def _count() -> int:
    return int(await Db.query_int("select count(*) from orm.counters") or 0)


class Boom(Exception):
    pass


async def test_commit_and_rollback() -> None:
    async with transaction():
        assert in_transaction()
        await Counter(id=1).save()
    assert not in_transaction()
    assert await _count() == 1
    with pytest.raises(Boom):
        async with transaction():
            await Counter(id=2).save()
            raise Boom
    assert await _count() == 1


async def test_everything_inside_uses_one_connection() -> None:
    async with transaction():
        conn = current_connection()
        pid = await Db.query_value("select pg_backend_pid()")
        rows = await Counter.find("select pg_backend_pid() as pid")
        assert rows[0].get("pid") == pid
        assert await Db.query_value("select pg_backend_pid()") == pid
        assert conn is current_connection()
    assert current_connection() is None


async def test_savepoint_rollback_keeps_outer_work() -> None:
    async with transaction():
        await Counter(id=1).save()
        with pytest.raises(Boom):
            async with transaction():
                await Counter(id=2).save()
                raise Boom
        async with transaction():
            await Counter(id=3).save()
    assert sorted(await Counter.query().pluck("id")) == [1, 3]


async def test_nested_savepoints_release_and_roll_back_by_depth() -> None:
    # Savepoints are named by depth: siblings reuse a name, and each RELEASE / ROLLBACK
    # TO must find its own block's savepoint, never an outer or an earlier one.
    async with transaction():
        await Counter(id=1).save()
        async with transaction():  # depth 1, released
            await Counter(id=2).save()
            with pytest.raises(Boom):
                async with transaction():  # depth 2, rolled back
                    await Counter(id=3).save()
                    async with transaction():  # depth 3, released into depth 2
                        await Counter(id=4).save()
                    raise Boom
            async with transaction():  # depth 2 again (same name), released
                await Counter(id=5).save()
        with pytest.raises(Boom):
            async with transaction():  # depth 1 again, rolled back with its inner work
                await Counter(id=6).save()
                async with transaction():
                    await Counter(id=7).save()
                raise Boom
        await Counter(id=8).save()
    assert sorted(await Counter.query().pluck("id")) == [1, 2, 5, 8]


async def test_savepoint_recovers_from_a_database_error() -> None:
    async with transaction():
        await Counter(id=1).save()
        with pytest.raises(Conflict):
            async with transaction():
                await Counter(id=1).save()
        await Counter(id=2).save()
    assert await _count() == 2


async def test_on_commit_and_on_rollback() -> None:
    events: list[str] = []

    async def async_hook() -> None:
        events.append("async-commit")

    async with transaction():
        on_commit(lambda: events.append("commit"))
        on_commit(async_hook)
        on_rollback(lambda: events.append("never"))
        with pytest.raises(Boom):
            async with transaction():
                on_commit(lambda: events.append("inner-commit-dropped"))
                on_rollback(lambda: events.append("inner-rollback"))
                raise Boom
        async with transaction():
            on_commit(lambda: events.append("inner-commit-kept"))
        assert events == ["inner-rollback"]
    assert events == ["inner-rollback", "commit", "async-commit", "inner-commit-kept"]

    events.clear()
    with pytest.raises(Boom):
        async with transaction():
            on_commit(lambda: events.append("commit"))
            on_rollback(lambda: events.append("rollback"))
            raise Boom
    assert events == ["rollback"]
    with pytest.raises(InternalServerError):
        on_commit(lambda: None)


async def test_isolation_readonly_deferrable() -> None:
    async with transaction(isolation="serializable", readonly=True, deferrable=True):
        assert await Db.query_str("show transaction_isolation") == "serializable"
        assert await Db.query_str("show transaction_read_only") == "on"
    async with transaction(isolation="repeatable_read"):
        assert await Db.query_str("show transaction_isolation") == "repeatable read"
    async with transaction(isolation="read_uncommitted", readonly=True):
        assert await Db.query_str("show transaction_isolation") == "read uncommitted"
        assert await Db.query_str("show transaction_read_only") == "on"
    async with transaction(isolation="read_committed", deferrable=True):
        assert await Db.query_str("show transaction_isolation") == "read committed"
        assert await Db.query_str("show transaction_deferrable") == "on"
    with pytest.raises(ValidationError):
        async with transaction(isolation="chaos"):
            pass


async def test_readonly_rejects_writes() -> None:
    # SQLSTATE 25006 has its own error: 503 READ_ONLY (was a generic 500 DATABASE_ERROR).
    with pytest.raises(ReadOnlyError) as info:
        async with transaction(readonly=True):
            await Counter(id=1).save()
    assert isinstance(info.value, AppError)
    assert (info.value.status_code, info.value.code) == (503, "READ_ONLY")
    assert await _count() == 0


async def test_concurrent_tasks_inside_a_transaction_get_a_clear_error() -> None:
    with pytest.raises(SharedConnectionError) as info:
        async with transaction():
            await asyncio.gather(Counter(id=1).save(), Counter(id=2).save())
    assert "another operation" not in info.value.message
    assert await _count() == 0

    async def spawned() -> None:
        await Db.execute("select 1")

    async with transaction():
        task = asyncio.create_task(spawned())
        with pytest.raises(SharedConnectionError):
            await task
        await Db.execute("select 1")  # the owner still works


async def test_a_task_spawned_in_a_transaction_uses_the_pool_after_it_ends() -> None:
    started = asyncio.Event()

    async def background() -> int | None:
        await started.wait()
        return await Db.query_int("select count(*) from orm.counters")

    async with transaction():
        task = asyncio.create_task(background())  # inherits the transaction's context
        await Counter(id=1).save()
    started.set()
    assert await task == 1  # ran on a pooled connection, after the commit


async def test_transactional_decorator_and_db_tx() -> None:
    @transactional
    async def add(i: int) -> None:
        await Counter(id=i).save()
        if i == 99:
            raise Boom

    @transactional(isolation="serializable")
    async def isolation() -> str | None:
        return await Db.query_str("show transaction_isolation")

    await add(1)
    with pytest.raises(Boom):
        await add(99)
    assert await isolation() == "serializable"
    assert await _count() == 1

    async def keep() -> bool:
        await Counter(id=2).save()
        return True

    async def drop() -> bool:
        await Counter(id=3).save()
        return False

    def sync_fn() -> None:
        pass

    assert await Db.tx(keep) is True
    assert await Db.tx(drop) is False
    assert await Db.tx(sync_fn) is True
    with pytest.raises(Boom):
        await Db.tx(add, 99)
    assert sorted(await Counter.query().pluck("id")) == [1, 2]


async def test_retry_transaction_on_real_serialization_failure() -> None:
    await Counter(id=1, n=0).save()
    attempts: list[int] = []
    first_read = asyncio.Event()
    other_committed = asyncio.Event()

    async def bump() -> int:
        attempts.append(1)
        counter = await Counter.find_by_id(1)
        assert counter is not None
        if len(attempts) == 1:
            first_read.set()
            await other_committed.wait()
        counter.n += 1
        await counter.update()
        return counter.n

    async def interfere() -> None:
        await first_read.wait()
        await Db.execute("update orm.counters set n = n + 10 where id = 1")
        other_committed.set()

    result, _ = await asyncio.gather(retry_transaction(bump, base_delay=0.001), interfere())
    assert len(attempts) == 2
    assert result == 11
    assert await Db.query_int("select n from orm.counters where id = 1") == 11


async def test_retry_gives_up_and_passes_other_errors() -> None:
    calls: list[int] = []

    async def always_conflict() -> None:
        calls.append(1)
        await Db.execute("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40001'; END $$")

    with pytest.raises(Conflict) as info:
        await retry_transaction(always_conflict, attempts=3, base_delay=0.001)
    assert info.value.retryable and len(calls) == 3

    async def fails() -> None:
        calls.append(2)
        raise Boom

    with pytest.raises(Boom):
        await retry_transaction(fails)
    assert calls.count(2) == 1


async def test_transaction_variable_is_reset_on_every_path() -> None:
    seen: list[Any] = []
    for exc in (None, Boom(), asyncio.CancelledError()):
        try:
            async with transaction():
                if exc is not None:
                    raise exc
        except (Boom, asyncio.CancelledError):
            pass
        seen.append(in_transaction())
    assert seen == [False, False, False]


async def test_the_owner_check_asks_asyncio_for_the_running_task() -> None:
    # _context.running_task is asyncio.current_task's own lookup without its Python
    # frame on CPython 3.11 (the dict asyncio keeps), asyncio.current_task elsewhere.
    import sys

    from luser_db._context import running_task

    loop = asyncio.get_running_loop()
    assert running_task(loop) is asyncio.current_task()
    if sys.version_info[:2] == (3, 11):
        assert running_task == asyncio.tasks._current_tasks.get  # type: ignore[attr-defined]

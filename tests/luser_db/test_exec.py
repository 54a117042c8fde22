"""The one door: every statement (model, builder, Db, iterate, COPY, connection()) is seen
by on_query listeners and has its errors translated; connection() joins transactions."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, contextmanager

import pytest

import luser_db
from luser_common import AppError, DuplicateError, ValidationError
from luser_db import Db, Field, Model, QueryEvent, on_query, transaction

pytestmark = pytest.mark.usefixtures("clean_tables")


class Person(Model, table="orm.users"):
    id: int | None = Field(primary_key=True, default=None)
    name: str = ""
    email: str = ""
    age: int = 0


COLUMNS = ["name", "email", "age"]


@contextmanager
def recorded() -> Iterator[list[QueryEvent]]:
    events: list[QueryEvent] = []
    # This task's statements only: app fixtures of earlier tests keep background jobs running.
    task = asyncio.current_task()
    remove = on_query(
        lambda event: events.append(event) if asyncio.current_task() is task else None
    )
    try:
        yield events
    finally:
        remove()


async def test_every_door_reports_to_query_listeners() -> None:
    with recorded() as events:
        await Person(name="a", email="a@x", age=1).save()
        await Person.query().where("age = ?", 1).all()
        await Db.find("select * from orm.users where age = ?", 1)
        await Db.copy_records("orm.users", [{"name": "b", "email": "b@x", "age": 2}])
        async with luser_db.connection() as conn:
            await conn.fetchval("select count(*) from orm.users")
            await conn.copy_records_to_table(
                "users",
                schema_name="orm",
                records=[("c", "c@x", 3)],
                columns=["name", "email", "age"],
            )
        async for _ in Person.query().iterate(batch=2):
            pass
    kinds = [e.kind for e in events]
    assert kinds[:6] == ["insert", "select", "select", "copy", "select", "copy"]
    assert "fetch" in kinds and kinds[-1] == "rollback"  # iterate: cursor + FETCH rounds
    assert [e.rows for e in events[:6]] == [1, 1, 1, 1, 1, 1]
    assert all(e.source == "default" and e.duration >= 0 for e in events)
    assert events[0].param_count == 3 and events[0].error is None


async def test_errors_from_every_door_are_translated_and_reported() -> None:
    await Person(name="a", email="dup@x").save()
    with recorded() as events:
        with pytest.raises(DuplicateError):
            async with luser_db.connection() as conn:
                await conn.execute(
                    "insert into orm.users (name, email) values ($1, $2)", "b", "dup@x"
                )
        with pytest.raises(DuplicateError):
            await Db.copy_records("orm.users", [("c", "dup@x")], columns=["name", "email"])
        with pytest.raises(ValidationError):
            async with luser_db.connection() as conn:
                await conn.fetchval("select 1 / 0")
    assert [type(e.error) for e in events] == [DuplicateError, DuplicateError, ValidationError]
    assert await Db.query_int("select count(*) from orm.users") == 1  # the COPY wrote nothing


async def test_connection_joins_the_transaction() -> None:
    class Rollback(Exception):
        pass

    with pytest.raises(Rollback):
        async with transaction():
            pid = await Db.query_value("select pg_backend_pid()")
            async with luser_db.connection() as conn:
                assert conn.in_transaction()
                assert await conn.fetchval("select pg_backend_pid()") == pid
                await conn.execute(
                    "insert into orm.users (name, email) values ($1, $2)", "t", "t@x"
                )
                await conn.copy_records_to_table(
                    "users", schema_name="orm", records=[("u", "u@x")], columns=["name", "email"]
                )
            await Db.copy_records("orm.users", [("v", "v@x")], columns=["name", "email"])
            assert await Db.query_int("select count(*) from orm.users") == 3
            raise Rollback
    # Everything written through connection() and COPY went with the rollback.
    assert await Db.query_int("select count(*) from orm.users") == 0
    async with luser_db.connection() as conn:
        assert not conn.in_transaction()


async def test_connection_in_a_transaction_refuses_a_gathered_task() -> None:
    async with transaction(), luser_db.connection() as conn:

        async def other() -> None:
            await conn.fetchval("select 1")

        with pytest.raises(luser_db.SharedConnectionError):
            await asyncio.gather(asyncio.create_task(other()))


async def test_copy_records_counts_and_copy_from_query_exports() -> None:
    rows = [(f"n{i}", f"e{i}@x", i) for i in range(50)]
    assert await Db.copy_records("orm.users", rows, columns=["name", "email", "age"]) == 50
    assert await Db.copy_records("orm.users", []) == 0
    out = io.BytesIO()
    count = await Db.copy_from_query(
        "select name from orm.users where age < ? order by age", 3, output=out, format="csv"
    )
    assert count == 3 and out.getvalue() == b"n0\nn1\nn2\n"
    with pytest.raises(ValidationError):
        await Db.copy_records("orm.users; drop table x", rows)


async def test_a_cancelled_copy_writes_nothing_and_the_pool_recovers() -> None:
    streaming, never = asyncio.Event(), asyncio.Event()

    async def records() -> AsyncIterator[tuple[str, str, int]]:
        for i in range(5000):
            if i == 2000:
                streaming.set()  # 2,000 rows are on the wire: stall mid-COPY
                await never.wait()
            yield (f"n{i}", f"e{i}@x", i % 500)

    async def copy() -> None:
        async with luser_db.connection() as conn:
            await conn.copy_records_to_table(
                "users", schema_name="orm", records=records(), columns=["name", "email", "age"]
            )

    task = asyncio.create_task(copy())
    async with asyncio.timeout(30):
        await streaming.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await Db.query_int("select count(*) from orm.users") == 0
    async with luser_db.connection() as conn:  # the pool hands out working connections
        assert await conn.fetchval("select 1") == 1


async def test_closed_pool_is_a_clear_error(own_pool: str) -> None:
    luser_db.init(own_pool, min_size=1, max_size=1)
    assert await Db.query_int("select 1") == 1
    await luser_db.close()
    with pytest.raises(luser_db.PoolClosed) as info:
        await Db.query_int("select 1")
    assert isinstance(info.value, AppError) and info.value.status_code == 503
    with pytest.raises(luser_db.PoolClosed):
        async with luser_db.connection():
            pass
    assert not luser_db.is_retryable(info.value)
    async with aclosing(Person.query().iterate()) as rows:
        with pytest.raises(luser_db.PoolClosed):
            await rows.__anext__()


async def test_custom_sqlstates_reach_the_caller_without_the_driver() -> None:
    await Db.execute(
        "create or replace function orm.refuse(code text) returns text language plpgsql as"
        " $$ begin raise exception 'refused' using errcode = code; end $$"
    )
    with pytest.raises(AppError) as info:
        async with luser_db.connection() as conn:
            await conn.fetchval("select orm.refuse($1)", "LU402")
    assert luser_db.sqlstate(info.value) == "LU402"
    assert luser_db.sqlstate(ValueError()) is None

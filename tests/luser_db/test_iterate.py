"""iterate(): outside and inside a transaction, and proof that it fetches in bounded chunks."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterator
from contextlib import aclosing, contextmanager
from enum import Enum
from typing import Any

import pytest

import luser_db
from luser_db import Db, Field, Model, QueryEvent, on_query, transaction

pytestmark = pytest.mark.usefixtures("clean_tables")


class Color(Enum):
    RED = "red"


class Kind(Model, table="orm.kinds"):
    id: int = Field(primary_key=True)
    color: Color | None = None
    items: list[Any] | None = None


class Items(Model, table="orm.kinds"):  # no field with a codec
    id: int = Field(primary_key=True)
    items: list[Any] | None = None


class Counter(Model, table="orm.counters"):
    id: int = Field(primary_key=True)
    n: int = 0


@contextmanager
def fetch_rounds() -> Iterator[list[QueryEvent]]:
    """The cursor FETCH round trips seen while the block runs."""
    events: list[QueryEvent] = []
    remove = on_query(lambda e: events.append(e) if e.kind == "fetch" else None)
    try:
        yield events
    finally:
        remove()


async def _fill(n: int) -> None:
    await Db.execute(
        "insert into orm.counters (id, n) select i, i * 2 from generate_series(1, ?) i", n
    )


async def _all_connections_returned(deadline_s: float = 5.0) -> None:
    """Poll (with a deadline) until no pooled connection is in use. Polled, not read once:
    the query cache announces committed writes from a background task, which may hold a
    connection for its NOTIFY at the moment of the check; a leaked cursor never returns."""
    pool = await luser_db.get_pool()
    async with asyncio.timeout(deadline_s):
        while pool.get_size() - pool.get_idle_size():
            await asyncio.sleep(0.01)  # poll interval, not synchronisation


async def test_iterate_outside_a_transaction_streams_in_chunks_and_cleans_up() -> None:
    await _fill(25)
    seen = []
    with fetch_rounds() as rounds:
        async for row in Db.query("orm.counters").order_by("id").iterate(batch=10):
            seen.append((row["id"], row["n"]))
    assert seen == [(i, i * 2) for i in range(1, 26)]
    assert [e.rows for e in rounds] == [10, 10, 5, 0]
    # The cursor's own read-only transaction ended and its connection went back.
    assert not luser_db.in_transaction()
    await _all_connections_returned()


async def test_iterate_holds_at_most_one_batch_ahead_of_the_consumer() -> None:
    await _fill(20_000)
    with fetch_rounds() as rounds:
        async with aclosing(Db.query("orm.counters").order_by("id").iterate(batch=50)) as rows:
            first = await rows.__anext__()
            # One row consumed: exactly one round trip of 50 rows happened, not 20,000.
            assert first["id"] == 1
            assert [e.rows for e in rounds] == [50]
            for _ in range(60):
                await rows.__anext__()
            assert [e.rows for e in rounds] == [50, 50]
    await _all_connections_returned()  # aclosing returned the connection


async def test_iterate_inside_a_transaction_sees_its_uncommitted_rows() -> None:
    async with transaction():
        await _fill(7)
        with fetch_rounds() as rounds:
            ids = [
                row["id"] async for row in Db.query("orm.counters").order_by("id").iterate(batch=3)
            ]
        assert ids == list(range(1, 8))
        assert [e.rows for e in rounds] == [3, 3, 1, 0]
        assert luser_db.in_transaction()


async def test_iterate_builds_each_model_as_it_is_yielded() -> None:
    # Plain models are built one per row as the consumer asks for it, never a batch
    # ahead: the previous one is gone once dropped, so the cyclic GC finds no young
    # batch alive to promote (query.py, iterate).
    await _fill(25)
    alive: weakref.WeakSet[Counter] = weakref.WeakSet()
    most = 0
    async for counter in Counter.query().order_by("id").iterate(batch=10):
        alive.add(counter)
        most = max(most, len(alive))
    assert most == 1
    streamed = [(c.id, c.n, c.dirty_fields) async for c in Counter.query().iterate(batch=10)]
    loaded = await Counter.query().all()
    assert sorted(streamed) == [(c.id, c.n, frozenset()) for c in loaded]
    assert len(streamed) == 25


async def test_iterate_of_models_with_extra_columns_or_codecs_takes_the_general_path() -> None:
    # Rows that are not exactly the declared fields, or fields with a codec, are built
    # by Model._from_row: extra jsonb columns decoded, enum text turned into the enum.
    await Kind.batch_save([{"color": Color.RED, "items": [1, "a"]}, {"color": None, "items": []}])
    query = Items.query().select("id", "items as copy").order_by("id")
    seen = [k.copy async for k in query.iterate(batch=1)]  # type: ignore[attr-defined]
    assert seen == [[1, "a"], []]
    assert [k.color async for k in Kind.query().order_by("id").iterate()] == [Color.RED, None]

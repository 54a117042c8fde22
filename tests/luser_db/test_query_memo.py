"""A builder kept and reused (a module constant) renders its SQL once per terminal."""

from __future__ import annotations

from typing import Any

import pytest

from luser_db import Db, Field, Model, QueryBuilder
from luser_db import query as query_module


async def test_first_renders_once_per_builder(
    orm_schema: str, db_tx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await Db.execute("insert into orm.counters (id, n) values (1, 5), (2, 6)")
    rendered = []
    to_sql = QueryBuilder.to_sql

    def counting(self: QueryBuilder[Any]) -> tuple[str, list[Any]]:
        rendered.append(self)
        return to_sql(self)

    monkeypatch.setattr(QueryBuilder, "to_sql", counting)
    monkeypatch.setattr(query_module, "_shapes", {}, raising=False)  # shapes other tests rendered
    q = Db.query("orm.counters").where("n > ?", 5).for_update()
    for _ in range(3):
        row = await q.first()
        assert row is not None and row.n == 6
    assert len(rendered) == 1


async def test_per_call_builders_reuse_sql_of_the_same_shape(
    orm_schema: str, db_tx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await Db.execute("insert into orm.counters (id, n) values (1, 5), (2, 6), (3, 7), (4, 8)")
    rendered = []
    to_sql = QueryBuilder.to_sql

    def counting(self: QueryBuilder[Any]) -> tuple[str, list[Any]]:
        rendered.append(self)
        return to_sql(self)

    monkeypatch.setattr(QueryBuilder, "to_sql", counting)
    monkeypatch.setattr(query_module, "_shapes", {}, raising=False)  # shapes other tests rendered

    def query(low: int, high: int, skip: int) -> QueryBuilder[Any]:
        # A nested group, a second condition, LIMIT and OFFSET: values in _render's order.
        return (
            Db.query("orm.counters")
            .where(lambda q: q.where("n >= ?", low).or_where("id = ?", 99))
            .where("n <= ?", high)
            .order_by("id")
            .limit(2)
            .offset(skip)
        )

    assert [r.n for r in await query(5, 8, 0).all()] == [5, 6]
    assert [r.n for r in await query(6, 8, 1).all()] == [7, 8]
    assert [r.n for r in await query(5, 7, 2).all()] == [7]
    assert (await query(7, 8, 0).first()).n == 7  # type: ignore[union-attr]
    assert (await query(5, 8, 3).first()).n == 8  # type: ignore[union-attr]
    assert await query(5, 8, 0).count() == 2
    assert await query(5, 6, 0).count() == 2
    assert len(rendered) == 2  # select and first once each (count renders apart)
    # Another shape (no offset; IS NULL instead of a value) gets SQL of its own.
    assert [r.n for r in await Db.query("orm.counters").where(n=6).all()] == [6]
    assert await Db.query("orm.counters").where(n=None).all() == []
    assert len(rendered) == 4


async def test_model_queries_keyed_by_their_steps_get_the_sql_of_their_own_shape(
    orm_schema: str, db_tx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # User.query().where(x=..).for_update().limit(..) carries the chain of its steps as
    # its shape key: every builder below must run its own SQL, and each shape renders
    # once however its values change.
    await Db.execute("insert into orm.counters (id, n) values (1, 5), (2, 6), (3, 6)")
    rendered: list[str] = []
    to_sql = QueryBuilder.to_sql

    def counting(self: QueryBuilder[Any]) -> tuple[str, list[Any]]:
        sql, params = to_sql(self)
        rendered.append(sql)
        return sql, params

    monkeypatch.setattr(QueryBuilder, "to_sql", counting)
    monkeypatch.setattr(query_module, "_shapes", {}, raising=False)

    class Counter(Model, table="orm.counters"):
        id: int = Field(primary_key=True)
        n: int = 0

    for i in (1, 2, 3):
        row = await Counter.query().where(id=i).for_update().first()
        assert row is not None and row.id == i
        assert [r.id for r in await Counter.query().where(n=6).limit(i).all()] == [2, 3][:i]
    assert rendered == [
        'SELECT "id", "n" FROM "orm"."counters" WHERE "id" = $1 LIMIT $2 FOR UPDATE',
        'SELECT "id", "n" FROM "orm"."counters" WHERE "n" = $1 LIMIT $2',
    ]
    rendered.clear()
    # Same steps, other orders and mixes: each its own SQL, never another shape's
    # (the first two are what a wrongly kept chain would take the SQL of).
    assert len(await Counter.query().all()) == 3
    assert [r.id for r in await Counter.query().where(n=6).all()] == [2, 3]
    assert (await Counter.query().where(id=1).first()).id == 1  # type: ignore[union-attr]
    assert (await Counter.query().for_update(skip_locked=True).where(id=2).first()).id == 2  # type: ignore[union-attr]
    got = await Counter.query().where(n=6).where(id=3).offset(0).all()
    assert [r.id for r in got] == [3]
    got = await Counter.query().where(n=6).where("id > ?", 2).all()  # a general where
    assert [r.id for r in got] == [3]
    got = await Counter.query().where(n=6).order_by("-id").limit(1).all()  # order: no step
    assert [r.id for r in got] == [3]
    assert await Counter.query().where(n=None).all() == []
    assert rendered == [
        'SELECT "id", "n" FROM "orm"."counters"',
        'SELECT "id", "n" FROM "orm"."counters" WHERE "n" = $1',
        'SELECT "id", "n" FROM "orm"."counters" WHERE "id" = $1 LIMIT $2',
        'SELECT "id", "n" FROM "orm"."counters" WHERE "id" = $1 LIMIT $2 FOR UPDATE SKIP LOCKED',
        'SELECT "id", "n" FROM "orm"."counters" WHERE ("n" = $1) AND ("id" = $2) OFFSET $3',
        'SELECT "id", "n" FROM "orm"."counters" WHERE ("n" = $1) AND (id > $2)',
        'SELECT "id", "n" FROM "orm"."counters" WHERE "n" = $1 ORDER BY "id" DESC LIMIT $2',
        'SELECT "id", "n" FROM "orm"."counters" WHERE "n" IS NULL',
    ]

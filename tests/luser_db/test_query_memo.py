"""A builder kept and reused (a module constant) renders its SQL once per terminal."""

from __future__ import annotations

from typing import Any

import pytest

from luser_db import Db, QueryBuilder
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

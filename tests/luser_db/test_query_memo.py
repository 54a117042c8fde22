"""A builder kept and reused (a module constant) renders its SQL once per terminal."""

from __future__ import annotations

from typing import Any

import pytest

from luser_db import Db, QueryBuilder


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
    q = Db.query("orm.counters").where("n > ?", 5).for_update()
    for _ in range(3):
        row = await q.first()
        assert row is not None and row.n == 6
    assert len(rendered) == 1

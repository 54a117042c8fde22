"""Column expressions in updates: query().update, Model.update(**changes), upsert(update={})."""

from __future__ import annotations

import asyncio

import pytest

from luser_common import ValidationError
from luser_db import Db, Expr, Field, Model

pytestmark = pytest.mark.usefixtures("clean_tables")


class Counter(Model, table="orm.counters"):
    id: int = Field(primary_key=True, generated=False)
    n: int = 0


async def test_query_update_with_an_expression_has_no_lost_updates() -> None:
    await Counter(id=1, n=0).save()
    query = Counter.query().where("id = ?", 1)
    await asyncio.gather(*(query.update(n=Expr("n + ?", 2)) for _ in range(20)))
    assert await Db.query_int("select n from orm.counters where id = 1") == 40
    # Expressions mix with plain values and number their parameters after them.
    await Counter(id=2, n=5).save()
    assert await Counter.query().where("id >= ?", 1).update(n=Expr("n * ? + ?", 10, 1)) == 2
    assert await Db.query_column("select n from orm.counters order by id") == [401, 51]


async def test_model_update_reads_the_computed_value_back() -> None:
    counter = Counter(id=3, n=7)
    await counter.save()
    assert await counter.update(n=Expr("n + ?", 5)) is True
    assert counter.n == 12 and not counter.__dict__.get("_dirty")
    assert await Db.query_int("select n from orm.counters where id = 3") == 12
    with pytest.raises(ValidationError):
        await counter.update(id=Expr("id + 1"))
    gone = Counter(id=99, n=0)
    assert await gone.update(n=Expr("n + 1")) is False  # no such row


async def test_upsert_with_an_expression_accumulates() -> None:
    for amount in (3, 4):
        await Counter(id=5, n=amount).upsert(update={"n": Expr("counters.n + EXCLUDED.n")})
    assert await Db.query_int("select n from orm.counters where id = 5") == 7
    await Counter(id=5, n=0).upsert(update={"n": 100})
    assert await Db.query_int("select n from orm.counters where id = 5") == 100


def test_bad_expressions_are_refused() -> None:
    with pytest.raises(ValidationError):
        Expr("n + ?")  # one placeholder, no parameter
    with pytest.raises(ValidationError):
        Expr("n + ?", 1, 2)
    with pytest.raises(ValidationError):
        Expr("   ")

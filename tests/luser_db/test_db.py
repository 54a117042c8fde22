"""Db / Record: the facade for SQL without a model."""

from __future__ import annotations

import pytest

from luser_common import ValidationError
from luser_db import Db, DbSource, Record

pytestmark = pytest.mark.usefixtures("orm_schema", "db_tx")


async def _seed() -> None:
    await Db.batch(
        "insert into orm.users(name, email, age) values (?, ?, ?)",
        [("ann", "ann@x.io", 30), ("bob", "bob@x.io", 17), ("cid", "cid@x.io", 45)],
    )


def test_record_is_a_mapping_with_attributes() -> None:
    rec = Record(name="bob", n=1)
    assert rec["name"] == rec.name == rec.get("name") == "bob"
    rec.age = 3
    assert rec["age"] == 3 and dict(rec) == {"name": "bob", "n": 1, "age": 3}
    assert rec.set("x", 1) is rec
    del rec.x
    with pytest.raises(AttributeError):
        _ = rec.missing
    assert rec.to_dict() == dict(rec)


async def test_find_find_first_and_scalars() -> None:
    await _seed()
    recs = await Db.find("select id, name from orm.users where age > ? order by id", 18)
    assert [r.name for r in recs] == ["ann", "cid"] and isinstance(recs[0], Record)
    rec = await Db.find_first("select count(*) as n from orm.users")
    assert rec is not None and rec["n"] == 3 and rec.get("n") == 3
    assert await Db.find_first("select * from orm.users where age > $1", 100) is None
    assert await Db.query_int("select count(*) from orm.users") == 3
    assert await Db.query_str("select name from orm.users where age = ?", 17) == "bob"
    assert await Db.query_bool("select exists(select 1 from orm.users where age = ?)", 45) is True
    assert await Db.query_value("select name from orm.users where age = ?", 1) is None
    assert await Db.query_column("select age from orm.users order by age") == [17, 30, 45]


async def test_save_update_delete_by_id() -> None:
    rec = Record(name="bob", email="b@x.io")
    assert await Db.save("orm.users", rec)
    assert isinstance(rec.id, int) and rec.age == 0  # RETURNING fills defaults
    rec.age = 9
    assert await Db.update("orm.users", rec)
    found = await Db.find_by_id("orm.users", rec.id)
    assert found is not None and found.age == 9
    assert await Db.execute("update orm.users set age = age + 1 where id = ?", rec.id) == 1
    assert await Db.delete_by_id("orm.users", rec.id)
    assert not await Db.delete("orm.users", rec)
    with pytest.raises(ValidationError):
        await Db.update("orm.users", Record(name="x"))
    with pytest.raises(ValidationError):
        await Db.save('orm.users"; drop table x; --', Record(name="x"))
    with pytest.raises(ValidationError):
        await Db.save("orm.users", Record({"name; drop": "x"}))
    with pytest.raises(ValidationError):
        await Db.find_by_id("orm.users", 1, pk="id or 1=1")


async def test_paginate_and_batch_save() -> None:
    assert (
        await Db.batch_save(
            "orm.users", [Record(name=f"n{i}", email=f"n{i}@x.io", age=i) for i in range(12)]
        )
        == 12
    )
    page = await Db.paginate(
        2, 5, "select id, name", "from orm.users where age >= ? order by age", 0
    )
    assert [r.name for r in page.items] == ["n5", "n6", "n7", "n8", "n9"]
    assert page.total_row == 12 and page.total_page == 3
    beyond = await Db.paginate(9, 5, "select *", "from orm.users")
    assert beyond.items == [] and beyond.total_row == 12
    with pytest.raises(ValidationError):
        await Db.paginate(1, 0, "select *", "from orm.users")
    with pytest.raises(ValidationError):
        await Db.batch_save("orm.users", [Record(name="a", email="a"), Record(name="b")])
    assert await Db.batch_save("orm.users", []) == 0


async def test_use_returns_a_bound_facade() -> None:
    replica = Db.use("replica")
    assert isinstance(replica, DbSource) and replica.source == "replica"
    assert Db.use("default").source == "default"

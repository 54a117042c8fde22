"""batch_save of models, dicts and tuples; batch_upsert via COPY and one INSERT ... ON CONFLICT."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from enum import Enum
from typing import Any

import pytest

from luser_common import AppError, ValidationError
from luser_db import Db, Field, Model
from luser_db.bulk import UpsertResult
from luser_db.testing import assert_queries


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class User(Model, table="orm.users"):
    id: int = Field(primary_key=True)
    name: str
    email: str
    age: int = 0
    profile: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Kind(Model, table="orm.kinds"):
    id: int = Field(primary_key=True)
    color: Color | None = None
    items: list[Any] | None = None
    label: str = "x"


async def _users() -> list[tuple[str, int]]:
    rows = await Db.find("select email, age from orm.users order by email")
    return [(r.email, r.age) for r in rows]


async def test_batch_save_dicts_and_tuples(orm_schema: str, db_tx: Any) -> None:
    dicts = [{"name": f"n{i}", "email": f"d{i}@x", "age": i} for i in range(3)]
    dicts[1] = {"age": 1, "email": "d1@x", "name": "n1"}  # key order may differ
    assert await User.batch_save(dicts) == 3
    tuples = [(f"t{i}", f"t{i}@x", 40 + i) for i in range(2)]
    assert await User.batch_save(tuples, columns=("name", "email", "age")) == 2
    full = [("f", "f@x", 7, {"a": 1}, None, None)]  # every non-generated field, in order
    assert await User.batch_save(full) == 1
    assert await _users() == [
        ("d0@x", 0),
        ("d1@x", 1),
        ("d2@x", 2),
        ("f@x", 7),
        ("t0@x", 40),
        ("t1@x", 41),
    ]
    stamped = await Db.query_int("select count(*) from orm.users where created_at is not null")
    assert stamped == 5  # the explicit tuple set created_at to None itself
    profile = await Db.find_first("select profile from orm.users where email = 'f@x'")
    assert profile is not None and profile.profile == {"a": 1}


async def test_batch_save_converts_enums_and_json_columnwise(orm_schema: str, db_tx: Any) -> None:
    await Kind.batch_save([{"color": Color.RED, "items": [1, "a"]}, {"color": None, "items": None}])
    rows = await Kind.query().order_by("id").all()
    assert [(k.color, k.items) for k in rows] == [(Color.RED, [1, "a"]), (None, None)]


@pytest.mark.parametrize(
    "rows",
    [
        [{"name": "a", "email": "a@x"}, ("b", "b@x", 1, None, None, None)],
        [{"name": "a", "email": "a@x"}, {"name": "b", "email": "b@x", "age": 3}],
        [{"name": "a", "email": "a@x"}, {"name": "b", "age": 3}],  # same size, other keys
        [{"name": "a", "email": "a@x"}, defaultdict(str, name="b", age=3)],  # invents "email"
        [("a", "a@x", 1, None, None, None), ("b", "b@x")],
        [User(name="a", email="a@x"), {"name": "b", "email": "b@x"}],
        [["a", "a@x"]],
        [{"name": "a", "emial": "a@x"}],
    ],
)
async def test_batch_save_bad_shapes_write_nothing(orm_schema: str, db_tx: Any, rows: Any) -> None:
    with assert_queries(0), pytest.raises(ValidationError) as info:
        await User.batch_save(rows)
    assert info.value.status_code == 422


async def test_batch_save_of_a_json_value_that_contains_itself_is_refused(
    clean_tables: str,
) -> None:
    # Dict rows skip the model's JSON check; the encoder (luser_db/_json.py, no
    # circular-reference markers) must still refuse the value, not overflow the stack.
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(ValidationError) as info:
        await User.batch_save([{"name": "a", "email": "a@x", "profile": loop}])
    assert info.value.status_code == 422
    assert await _users() == []


async def test_batch_save_database_refusal_is_an_app_error(clean_tables: str) -> None:
    good = {"name": "a", "email": "a@x", "age": 1}
    with pytest.raises(AppError) as info:  # the driver cannot encode the value
        await User.batch_save([good, {"name": "b", "email": "b@x", "age": "old"}])
    assert info.value.status_code == 422
    with pytest.raises(AppError) as info:  # the database refuses a row: all or nothing
        await User.batch_save([good, {"name": "b", "email": "b@x", "age": -1}])
    assert info.value.status_code < 500
    assert await _users() == []


async def test_batch_upsert_counts_inserted_and_updated(orm_schema: str, db_tx: Any) -> None:
    await User.batch_save([{"name": "old", "email": "a@x", "age": 1}])
    before = await User.query().where(email="a@x").first()
    assert before is not None
    rows = [
        {"name": "new", "email": "a@x", "age": 2},
        {"name": "b", "email": "b@x", "age": 3},
        {"name": "c", "email": "c@x", "age": 4},
    ]
    with assert_queries(5):  # unique-index check, temp table, COPY, merge, drop
        result = await User.batch_upsert(rows, conflict=("email",), update=("name", "age"))
    assert result == UpsertResult(inserted=2, updated=1)
    after = await User.query().where(email="a@x").first()
    assert after is not None and (after.name, after.age, after.id) == ("new", 2, before.id)
    again = await User.batch_upsert(
        [User(name="z", email="c@x", age=9)], conflict="email", update=("age",)
    )
    assert again == UpsertResult(0, 1)
    assert await _users() == [("a@x", 2), ("b@x", 3), ("c@x", 9)]
    z = await User.query().where(email="c@x").first()
    assert z is not None and z.name == "c"  # name was not in update=
    nothing = await User.batch_upsert(
        [("q", "c@x", 1)], conflict="email", update=(), columns=("name", "email", "age")
    )
    assert nothing == UpsertResult(0, 0)


async def test_upsert_without_unique_index_fails_before_any_write(
    orm_schema: str, db_tx: Any
) -> None:
    rows = [{"name": "a", "email": "a@x", "age": 1}]
    with assert_queries(1), pytest.raises(ValidationError, match="唯一索引") as info:
        await User.batch_upsert(rows, conflict=("name",))
    assert info.value.field == "conflict"
    assert await _users() == []


async def test_upsert_bad_input(orm_schema: str, db_tx: Any) -> None:
    rows = [{"name": "a", "email": "a@x"}, {"name": "b", "email": "a@x"}]
    with assert_queries(0), pytest.raises(ValidationError, match="重复"):
        await User.batch_upsert(rows, conflict="email")
    with assert_queries(0), pytest.raises(ValidationError, match="age"):
        await User.batch_upsert(rows[:1], conflict="email", update=("age",))
    with assert_queries(0), pytest.raises(ValidationError):
        await User.batch_upsert(rows[:1], conflict="nope")
    with assert_queries(0), pytest.raises(ValidationError, match="不一致"):
        await User.batch_upsert([rows[0], ("a", "b")], conflict="email")
    assert await User.batch_upsert([], conflict="email") == UpsertResult(0, 0)


class Clip(Model, table="orm.videos", soft_delete=True):
    id: int = Field(primary_key=True)
    owner_id: int | None = Field(default=None, column="user_id")
    title: str
    deleted_at: datetime | None = None


async def test_dict_rows_may_use_attribute_or_column_names(orm_schema: str, db_tx: Any) -> None:
    await Db.execute("insert into orm.users (id, name, email) values (7, 'u', 'u@x')")
    await Clip.batch_save([{"owner_id": 7, "title": "a"}])
    await Clip.batch_save([{"user_id": 7, "title": "b"}])
    assert await Db.query_int("select count(*) from orm.videos where user_id = 7") == 2

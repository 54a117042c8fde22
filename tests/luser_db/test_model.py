"""Model: declaration, CRUD, dirty tracking, types, soft delete, timestamps, batches, upsert."""

from __future__ import annotations

import enum
import json
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest

from luser_common import DuplicateError, ValidationError
from luser_db import Db, Field, Model, QueryBuilder, transaction
from luser_db._json import dumps_json, dumps_jsonb
from luser_db.testing import assert_queries

pytestmark = pytest.mark.usefixtures("orm_schema", "db_tx")


class User(Model, table="orm.users"):
    id: int = Field(primary_key=True)
    name: str
    email: str
    age: int = 0
    profile: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Video(Model, table="orm.videos", soft_delete=True):
    id: int = Field(primary_key=True)
    user_id: int | None = None
    title: str
    views: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Kind(Model, table="orm.kinds"):
    id: int = Field(primary_key=True)
    flag: bool | None = None
    ratio: float | None = None
    price: Decimal | None = None
    born: date | None = None
    clock: time | None = None
    uid: uuid.UUID | None = None
    blob: bytes | None = None
    tags: list[str] | None = None
    scores: list[int] | None = None
    color: Color | None = None
    items: list[Any] | None = None
    dur: timedelta | None = None
    label: str = Field(generated=True)


async def _user(name: str = "ann", age: int = 30) -> User:
    u = User(name=name, email=f"{name}@example.com", age=age)
    await u.save()
    return u


# -- declaration -----------------------------------------------------------------------


def test_metadata_registry() -> None:
    meta = User._meta
    assert list(meta.fields) == [
        "id",
        "name",
        "email",
        "age",
        "profile",
        "created_at",
        "updated_at",
    ]
    assert meta.pk is meta.fields["id"]
    assert meta.fields["id"].generated
    assert meta.fields["profile"].pg_type == "jsonb"
    assert meta.fields["profile"].nullable and not meta.fields["name"].nullable
    assert meta.qtable == '"orm"."users"'
    assert Kind._meta.fields["tags"].pg_type == "text[]"
    assert Kind._meta.fields["items"].pg_type == "jsonb"
    assert Kind._meta.fields["color"].pg_type == "text"
    assert isinstance(User.query(), QueryBuilder)


def test_field_column_name_and_inheritance() -> None:
    class Base(Model, table="orm.users"):
        id: int = Field(primary_key=True)
        name: str

    class Child(Base, table="orm.users"):
        full_email: str = Field(column="email")

    class Other(Base, table="orm.users"):
        pass

    assert Child._meta.fields["full_email"].column == "email"
    assert Child._meta.fields["name"] is not Base._meta.fields["name"]
    assert Other._meta.fields["name"] is not Child._meta.fields["name"]
    assert Child._meta.fields["name"].model is Child
    assert '"email" AS "full_email"' in Child._meta.select_list


def test_bad_table_name_rejected_at_class_creation() -> None:
    with pytest.raises(ValidationError):

        class Bad(Model, table='users"; drop table x; --'):
            id: int = Field(primary_key=True)


# -- CRUD ------------------------------------------------------------------------------


async def test_save_find_update_delete() -> None:
    u = User(name="ann", email="ann@example.com", age=30, profile={"tier": "gold"})
    assert u.id is None
    assert await u.save()
    assert isinstance(u.id, int)
    assert u.created_at is not None and u.updated_at is not None
    found = await User.find_by_id(u.id)
    assert found is not None
    assert found.to_dict() == u.to_dict()
    assert found.profile == {"tier": "gold"}
    assert found.dirty_fields == frozenset()
    assert await found.update() is False  # loaded rows start clean
    found.age = 31
    before = found.updated_at
    with assert_queries(1) as log:
        assert await found.update() is True
    assert "age" in log.statements[0] and "email" not in log.statements[0]
    assert found.updated_at is not None and before is not None and found.updated_at >= before
    again = await User.find_by_id(u.id)
    assert again is not None and again.age == 31
    assert await again.delete() is True
    assert await User.find_by_id(u.id) is None
    assert await again.delete() is False


async def test_update_writes_only_modified_columns() -> None:
    u = await _user()
    await Db.execute("update orm.users set name = 'changed elsewhere' where id = ?", u.id)
    u.age = 40
    await u.update()
    fresh = await User.find_by_id(u.id)
    assert fresh is not None and fresh.name == "changed elsewhere" and fresh.age == 40


async def test_find_by_ids_keeps_input_order() -> None:
    a, b, c = await _user("a"), await _user("b"), await _user("c")
    found = await User.find_by_ids([c.id, a.id, 999_999, b.id])
    assert [u.name for u in found] == ["c", "a", "b"]
    assert await User.find_by_ids([]) == []


async def test_raw_find_keeps_extra_columns() -> None:
    await _user("ann", 30)
    await _user("kid", 10)
    adults = await User.find(
        "select *, upper(name) as shout from orm.users where age > ? order by id", 18
    )
    assert [u.name for u in adults] == ["ann"]
    assert adults[0].get("shout") == "ANN"
    first = await User.find_first("select * from orm.users where email = $1", "kid@example.com")
    assert first is not None and first.age == 10
    assert await User.find_first("select * from orm.users where age > ?", 500) is None
    limited = await User.find_first("select * from orm.users order by id limit 5")
    assert limited is not None and limited.name == "ann"


async def test_model_paginate_jfinal_form() -> None:
    for i in range(5):
        await _user(f"u{i}", 20 + i)
    page = await User.paginate(2, 2, "select *", "from orm.users where age >= ? order by id", 20)
    assert [u.name for u in page.items] == ["u2", "u3"]
    assert (page.total_row, page.total_page, page.page_number) == (5, 3, 2)
    with pytest.raises(ValidationError):
        await User.paginate(0, 2, "select *", "from orm.users")


async def test_get_set_to_dict() -> None:
    u = User(name="ann", email="a@x.io")
    assert u.get("age") == 0
    u.set("age", 5).set("note", "extra")
    assert u.age == 5 and u.get("note") == "extra"
    assert u.to_dict()["note"] == "extra"
    assert "age" in u.dirty_fields


# -- types -----------------------------------------------------------------------------


async def test_type_mapping_round_trip() -> None:
    k = Kind(
        flag=True,
        ratio=1.5,
        price=Decimal("12.34"),
        born=date(2000, 1, 2),
        clock=time(12, 30),
        uid=uuid.UUID(int=7),
        blob=b"\x00\x01",
        tags=["a", "b"],
        scores=[1, 2],
        color=Color.BLUE,
        items=[{"a": 1}, 2],
        dur=timedelta(minutes=5),
    )
    await k.save()
    assert k.label == "x"  # db default read back by RETURNING
    got = await Kind.find_by_id(k.id)
    assert got is not None
    assert got.color is Color.BLUE
    assert got.to_dict() == k.to_dict()
    assert await Db.query_value("select color from orm.kinds where id = ?", k.id) == "blue"
    k2 = Kind(color="red")  # enum values are accepted and converted
    assert k2.color is Color.RED


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("age", "thirty"),
        ("age", True),
        ("age", 1.5),
        ("name", 5),
        ("profile", [1, 2]),
        ("created_at", "2020-01-01"),
    ],
)
def test_wrong_python_type_is_a_validation_error(field: str, value: Any) -> None:
    values: dict[str, Any] = {"name": "ann", "email": "a@x.io", field: value}
    with pytest.raises(ValidationError) as info:
        User(**values)
    assert info.value.field == field
    u = User(name="ann", email="a@x.io")
    with pytest.raises(ValidationError):
        setattr(u, field, value)


def test_other_type_errors() -> None:
    with pytest.raises(ValidationError):
        Kind(color="green")
    with pytest.raises(ValidationError):
        Kind(born=datetime(2020, 1, 1))
    with pytest.raises(ValidationError) as info:
        User(name="ann", email="a@x.io", nope=1)
    assert info.value.field == "nope"


async def test_none_for_non_null_field_fails_before_sql() -> None:
    with pytest.raises(ValidationError) as info:
        User(name=None, email="a@x.io")  # type: ignore[arg-type]
    assert info.value.field == "name"
    missing = User(name="ann")
    with assert_queries(0), pytest.raises(ValidationError) as info:
        await missing.save()
    assert info.value.field == "email"
    assert await User.query().count() == 0


# -- soft delete -----------------------------------------------------------------------


async def test_soft_delete_and_restore() -> None:
    owner = await _user()
    v = Video(title="hello", user_id=owner.id)
    await v.save()
    w = Video(title="other", user_id=owner.id)
    await w.save()
    assert await v.delete()
    assert v.deleted_at is not None
    assert await Video.find_by_id(v.id) is None
    assert [x.title for x in await Video.query().all()] == ["other"]
    assert await Video.query().count() == 1
    assert len(await Video.with_deleted().all()) == 2
    assert [x.title for x in await Video.only_deleted().all()] == ["hello"]
    assert await Db.query_int("select count(*) from orm.videos") == 2  # still there
    assert await v.restore()
    assert await Video.find_by_id(v.id) is not None
    assert await Video.query().where("title = ?", "other").delete() == 1
    assert await Video.query().count() == 1
    assert await w.hard_delete()
    assert await Db.query_int("select count(*) from orm.videos") == 1


# -- timestamps on every write path ---------------------------------------------------


async def test_timestamps_on_query_update_and_batch_paths() -> None:
    u = await _user()
    await Db.execute("update orm.users set updated_at = '2000-01-01' where id = ?", u.id)
    assert await User.query().where(id=u.id).update(age=44) == 1
    fresh = await User.find_by_id(u.id)
    assert fresh is not None and fresh.updated_at is not None and fresh.updated_at.year > 2000
    await Db.execute("update orm.users set updated_at = '2000-01-01' where id = ?", u.id)
    fresh.age = 45
    await User.batch_update([fresh])
    assert (await User.find_by_id(u.id)).updated_at.year > 2000  # type: ignore[union-attr]
    await User.batch_save([User(name="b", email="b@x.io")])
    b = await User.query().where(email="b@x.io").first()
    assert b is not None and b.created_at is not None and b.updated_at is not None
    up = User(name="ann2", email="ann@example.com", age=1)
    await Db.execute("update orm.users set updated_at = '2000-01-01' where id = ?", u.id)
    await up.upsert("email")
    assert up.id == u.id and up.updated_at is not None and up.updated_at.year > 2000


# -- batches and upsert ----------------------------------------------------------------


async def test_batch_save_uses_copy() -> None:
    users = [User(name=f"n{i}", email=f"n{i}@x.io", age=i, profile={"i": i}) for i in range(50)]
    with assert_queries(1) as log:
        assert await User.batch_save(users) == 50
    assert log.statements[0].startswith("COPY")
    assert await User.query().count() == 50
    got = await User.query().where(email="n7@x.io").first()
    assert got is not None and got.profile == {"i": 7}


async def test_batch_save_is_all_or_nothing() -> None:
    users = [User(name="a", email="same@x.io"), User(name="b", email="same@x.io")]
    with pytest.raises(DuplicateError):
        async with transaction():  # a savepoint, so the test's transaction stays usable
            await User.batch_save(users)
    assert await User.query().count() == 0
    mixed = [User(name="a", email="a@x.io"), User(id=77, name="b", email="b@x.io")]
    with pytest.raises(ValidationError):
        await User.batch_save(mixed)


async def test_batch_update_groups_by_changed_columns() -> None:
    users = [await _user(f"u{i}", i) for i in range(4)]
    users[0].age = 100
    users[1].age = 101
    users[2].name = "renamed"
    with assert_queries(2):
        assert await User.batch_update(users) == 3
    rows = {u.email: u for u in await User.query().all()}
    assert rows["u0@example.com"].age == 100
    assert rows["u1@example.com"].age == 101
    assert rows["u2@example.com"].name == "renamed"
    assert rows["u3@example.com"].age == 3


async def test_upsert_update_and_do_nothing() -> None:
    original = await _user("ann", 30)
    again = User(name="ann-new", email="ann@example.com", age=33)
    assert await again.upsert("email")
    assert again.id == original.id and again.name == "ann-new"
    assert again.created_at == original.created_at  # not overwritten on conflict
    ignored = User(name="zzz", email="ann@example.com")
    assert await ignored.upsert("email", do_nothing=True) is False
    assert ignored.id is None
    only_age = User(name="not-written", email="ann@example.com", age=50)
    assert await only_age.upsert("email", update=["age"])
    assert only_age.name == "ann-new" and only_age.age == 50
    with pytest.raises(ValidationError):
        await User(name="x", email="y").upsert("no_such_column")


async def test_duplicate_on_save_names_constraint_and_writes_nothing() -> None:
    await _user("ann")
    with pytest.raises(DuplicateError) as info:
        async with transaction():
            await User(name="other", email="ann@example.com").save()
    assert info.value.details == {"constraint": "users_email_key"}
    assert info.value.field == "email"
    assert "ann@example.com" not in info.value.message
    assert await User.query().count() == 1


async def test_jsonb_is_decoded_on_every_read_path() -> None:
    doc = {"a": [1, 2], "s": "ü"}
    u = User(name="ann", email="j@x.io", profile=doc)
    await u.save()
    loaded = await User.find_by_id(u.id)
    assert loaded is not None
    assert type(loaded.__dict__["profile"]).__name__ == "RawJson"  # decoded lazily
    assert loaded.to_dict()["profile"] == doc
    assert loaded.profile == doc and type(loaded.__dict__["profile"]) is dict
    rows = await User.find("select *, profile as p2 from orm.users")
    assert rows[0].get("p2") == doc and rows[0].p2 == doc  # type: ignore[attr-defined]
    rec = await Db.find_first("select profile from orm.users")
    assert rec is not None and rec.profile == doc
    assert await Db.query_value("select profile from orm.users") == doc
    assert await User.query().pluck("profile") == [doc]
    assert (await User.query().select("profile").first()).profile == doc  # type: ignore[union-attr]
    again = await User.find_by_id(u.id)
    assert again is not None
    again.name = "renamed"
    assert await again.upsert("email")  # the undecoded value goes back unchanged
    final = await User.find_by_id(u.id)
    assert final is not None and final.profile == doc and final.name == "renamed"


# jsonb as PostgreSQL sends it back: escapes, non-ASCII, numbers beyond a float, nesting,
# top-level scalars. luser_db decodes with json's bare C scanner (luser_db/_json.py).
JSONB_TEXTS = [
    '{"a": [1, 2.5, -0, 1e300, 12345678901234567890123], "s": "ü 中 \\n \\" \\\\ \\u0001"}',
    '[[[{"deep": [null, false]}]]]',
    "[]",
    "{}",
    '"text"',
    "3.25",
    "true",
    "null",
]


def test_jsonb_is_encoded_byte_for_byte_like_json_dumps() -> None:
    # luser_db/_json.py calls json's C encoder directly, built once.
    values: list[Any] = [
        {"a": [1, 2.5, None, True], "ü": '中\n"', "n": {"x": []}},
        "text",
        3,
        -1.5e300,
        None,
        {1: date(2020, 1, 2)},  # keys as json writes them; unknown types through str()
    ]
    for value in values:
        expected = json.dumps(value, ensure_ascii=False, default=str).encode()
        assert dumps_json(value) == expected
        assert dumps_jsonb(value) == b"\x01" + expected


async def test_jsonb_decodes_like_json_loads_of_the_servers_text() -> None:
    for n, text in enumerate(JSONB_TEXTS):
        rec = await Db.find_first("select ?::jsonb as v, ?::jsonb::text as t", text, text)
        assert rec is not None
        expected = json.loads(rec.t)
        assert rec.v == expected and type(rec.v) is type(expected), text
        await Db.execute(
            "insert into orm.users (name, email, profile) values ('j', ?, ?::jsonb)", f"{n}@j", text
        )
        user = await User.query().where(email=f"{n}@j").first()
        assert user is not None
        assert user.to_dict()["profile"] == expected, text
        assert user.profile == expected and type(user.profile) is type(expected), text
    streamed = [u.profile async for u in User.query().order_by("id").iterate(batch=3)]
    texts = [await Db.query_value("select ?::jsonb::text", t) for t in JSONB_TEXTS]
    assert streamed == [json.loads(t) for t in texts]


async def test_field_reads_skip_the_descriptor_and_writes_are_still_checked() -> None:
    # Reads are plain instance-dict lookups (FieldAccessor has no __set__); writes go
    # through Model.__setattr__: checked, marked dirty; jsonb still decodes on read.
    assert not hasattr(type(vars(User)["name"]), "__set__")
    u = User(name="a", email="fast@x.io", profile={"k": [1]})
    await u.save()
    loaded = await User.find_by_id(u.id)
    assert loaded is not None and loaded.name == "a" and loaded.profile == {"k": [1]}
    with pytest.raises(ValidationError):
        loaded.age = "old"  # type: ignore[assignment]
    loaded.age = 7
    loaded.profile = {"k": [2]}
    assert loaded.dirty_fields == {"age", "profile"}
    loaded.note = "extra"  # type: ignore[attr-defined]  # not a field: a plain attribute
    assert await loaded.update()
    loaded.name = "b"  # another dirty set: its own SQL
    assert await loaded.update()
    again = await User.find_by_id(u.id)
    assert again is not None
    assert (again.name, again.age, again.profile) == ("b", 7, {"k": [2]})

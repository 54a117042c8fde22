"""QueryBuilder: compiled SQL without a database, immutability, and every terminal on real rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from luser_common import ValidationError
from luser_db import Db, Field, Model, Record, transaction
from luser_db import query as query_module
from luser_db.query import MAX_PAGE_SIZE, QueryBuilder
from luser_db.testing import assert_queries


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


COLS = '"id", "name", "email", "age", "profile", "created_at", "updated_at"'


# -- to_sql: no database -----------------------------------------------------------------


def test_to_sql_basic() -> None:
    sql, params = User.query().where("age > ?", 18).order_by("id desc").limit(5).offset(10).to_sql()
    assert sql == (
        f'SELECT {COLS} FROM "orm"."users" WHERE age > $1 ORDER BY "id" DESC LIMIT $2 OFFSET $3'
    )
    assert params == [18, 5, 10]


def test_fragments_are_renumbered() -> None:
    q = (
        User.query()
        .where("age > $1 and age < $2", 1, 9)
        .where("name = ?", "x")
        .or_where(email="e")
        .where_in("id", [1, 2])
    )
    sql, params = q.to_sql()
    assert (
        'WHERE (age > $1 and age < $2) AND (name = $3) OR ("email" = $4) AND ("id" = ANY($5))'
        in sql
    )
    assert params == [1, 9, "x", "e", [1, 2]]


def test_grouping_and_helpers() -> None:
    q = (
        User.query()
        .where(lambda w: w.where("age < ?", 10).or_where("age > ?", 90))
        .where_null("profile")
    )
    sql, params = q.to_sql()
    assert 'WHERE ((age < $1) OR (age > $2)) AND ("profile" IS NULL)' in sql
    assert params == [10, 90]
    sql, params = User.query().where_between("age", 1, 2).where_like("name", "a%").to_sql()
    assert '("age" BETWEEN $1 AND $2) AND ("name" LIKE $3)' in sql
    sql, _ = (
        User.query()
        .where_like("name", "a%", case_insensitive=True)
        .where_not_null("profile")
        .to_sql()
    )
    assert '"name" ILIKE $1' in sql and '"profile" IS NOT NULL' in sql


def test_select_distinct_join_group_having_lock() -> None:
    q = (
        User.query()
        .select("users.name", "name as n")
        .distinct()
        .left_join("orm.videos v", "v.user_id = users.id and v.views > ?", 3)
        .group_by("name")
        .having("count(*) > ?", 1)
        .order_by("n")
        .for_update(skip_locked=True)
    )
    sql, params = q.to_sql()
    assert sql == (
        'SELECT DISTINCT "users"."name", "name" AS "n" FROM "orm"."users"'
        ' LEFT JOIN "orm"."videos" "v" ON v.user_id = users.id and v.views > $1'
        ' GROUP BY "name" HAVING count(*) > $2 ORDER BY "n" FOR UPDATE SKIP LOCKED'
    )
    assert params == [3, 1]
    assert User.query().for_update(nowait=True).to_sql()[0].endswith("FOR UPDATE NOWAIT")


def test_soft_delete_filter_in_sql() -> None:
    assert (
        Video.query()
        .where("a = ?", 1)
        .or_where("b = ?", 2)
        .to_sql()[0]
        .endswith('WHERE ((a = $1) OR (b = $2)) AND "deleted_at" IS NULL')
    )
    assert Video.with_deleted().to_sql()[0].endswith('FROM "orm"."videos"')
    assert Video.only_deleted().to_sql()[0].endswith('"deleted_at" IS NOT NULL')


def test_builders_are_immutable() -> None:
    base = User.query().where("age > ?", 1)
    before = base.to_sql()
    a = base.where("name = ?", "a").order_by("id")
    b = base.where("name = ?", "b").limit(3)
    for _ in range(3):
        base.where("email = ?", "x")
    assert base.to_sql() == before
    assert a.to_sql()[1] == [1, "a"]
    assert b.to_sql()[1] == [1, "b", 3]
    assert "ORDER BY" not in b.to_sql()[0]


def test_question_marks_in_literals_are_not_params() -> None:
    sql, params = User.query().where("name <> '?' and profile ?? 'k' and age > ?", 3).to_sql()
    assert "name <> '?' and profile ? 'k' and age > $1" in sql
    assert params == [3]


@pytest.mark.parametrize(
    "build",
    [
        lambda: User.query().order_by("id; drop table users"),
        lambda: User.query().order_by("nope"),
        lambda: User.query().order_by('"id"'),
        lambda: User.query().where_in("id) or (1=1", [1]),
        lambda: User.query().where_in("unknown", [1]),
        lambda: User.query().select("name; delete from x"),
        lambda: User.query().select("secret"),
        lambda: User.query().join("users; drop", "true"),
        lambda: User.query().group_by("1=1"),
        lambda: User.query().where(bogus=1),
        lambda: User.query().where("age > ?"),
        lambda: User.query().where("age > ?", 1, 2),
        lambda: User.query().limit(-1),
        lambda: User.query().offset("3"),  # type: ignore[arg-type]
        lambda: User.query().where_like("a.b.c", "x"),
    ],
)
def test_bad_identifiers_and_arguments_fail_before_sql(build: Any) -> None:
    with pytest.raises(ValidationError):
        build()


# -- terminals on real rows --------------------------------------------------------------

pytestmark_db = pytest.mark.usefixtures("orm_schema", "db_tx")


async def _seed(n: int = 10) -> list[User]:
    users = [User(name=f"u{i:02d}", email=f"u{i}@x.io", age=i * 10) for i in range(n)]
    for u in users:
        await u.save()
    return users


@pytestmark_db
async def test_all_first_count_exists_await() -> None:
    await _seed()
    rows = await User.query().where("age >= ?", 50).order_by("age").all()
    assert [u.age for u in rows] == [50, 60, 70, 80, 90]
    assert [u.age for u in await User.query().where("age < ?", 20).order_by("-age")] == [10, 0]
    first = await User.query().order_by("age desc").first()
    assert first is not None and first.age == 90
    assert await User.query().where("age > ?", 1000).first() is None
    assert await User.query().where("age >= ?", 50).count() == 5
    assert await User.query().where("age >= ?", 50).limit(2).count() == 2
    assert await User.query().where(name="u03").exists()
    assert not await User.query().where(name="zz").exists()


@pytestmark_db
async def test_where_in_empty_and_not_in() -> None:
    users = await _seed(3)
    with assert_queries(1):
        assert await User.query().where_in("id", []).all() == []
    assert await User.query().where_not_in("id", []).count() == 3
    assert await User.query().where_not_in("id", [users[0].id]).count() == 2
    assert [
        u.id for u in await User.query().where_in("id", [users[2].id, users[1].id]).order_by("id")
    ] == [
        users[1].id,
        users[2].id,
    ]


@pytestmark_db
async def test_paginate() -> None:
    await _seed(25)
    page = await User.query().where("age >= ?", 0).order_by("id").paginate(2, 10)
    assert [u.name for u in page.items] == [f"u{i:02d}" for i in range(10, 20)]
    assert (page.page_number, page.page_size, page.total_row, page.total_page) == (2, 10, 25, 3)
    with assert_queries(1) as log:  # past the end: only the count runs
        empty = await User.query().order_by("id").paginate(4, 10)
    assert "ORDER BY" not in log.statements[0]
    assert empty.items == [] and empty.total_row == 25
    for page_no, size in [(0, 10), (-1, 10), (1, 0), (1, -5), (1, MAX_PAGE_SIZE + 1)]:
        with assert_queries(0), pytest.raises(ValidationError):
            await User.query().paginate(page_no, size)


class Contact(Model, table="orm.users"):
    id: int = Field(primary_key=True)
    name: str
    mail: str = Field(column="email")
    profile: dict[str, Any] | None = None


def test_select_of_fields_reads_each_under_its_attribute_name() -> None:
    sql, _ = Contact.query().select("id", "mail", "name as label").to_sql()
    assert sql.startswith('SELECT "id", "email" AS "mail", "name" AS "label" FROM')


@pytestmark_db
async def test_select_of_fields_loads_models_with_only_those_fields() -> None:
    await User(name="ann", email="ann@x.io", age=7, profile={"k": [1]}).save()
    (c,) = await Contact.query().select("mail", "profile").all()
    assert c.mail == "ann@x.io" and c.profile == {"k": [1]}
    assert c.name is None and c.id is None  # not selected: the field's default
    assert c.to_dict() == {"mail": "ann@x.io", "profile": {"k": [1]}}
    assert c.to_dict("profile", "mail", "name") == {
        "profile": {"k": [1]},
        "mail": "ann@x.io",
        "name": None,
    }
    (u,) = await User.query().select("name", "age as years").select_raw("age * 2 AS d").all()
    assert u.to_dict() == {"name": "ann", "years": 7, "d": 14}  # extra columns ride along


@pytestmark_db
async def test_first_loads_extra_columns_like_all() -> None:
    # first() builds a plain model in place (_one); rows with extra columns must still
    # take the full loader, which decodes an extra jsonb column (no field does it later).
    await User(name="ann", email="ann@x.io", age=7, profile={"k": [1]}).save()
    query = User.query().select("name").select_raw("profile AS raw_profile").where(age=7)
    first = await query.first()
    (listed,) = await query.all()
    assert first is not None and first.raw_profile == listed.raw_profile == {"k": [1]}


@pytestmark_db
async def test_a_reused_builder_renders_its_sql_once(monkeypatch: pytest.MonkeyPatch) -> None:
    await _seed(25)
    base = User.query().where("age >= ?", 0).order_by("id")
    rendered: list[str] = []
    to_sql = QueryBuilder.to_sql

    def counting(self: QueryBuilder[Any]) -> tuple[str, list[Any]]:
        rendered.append("x")
        return to_sql(self)

    monkeypatch.setattr(QueryBuilder, "to_sql", counting)
    monkeypatch.setattr(query_module, "_shapes", {}, raising=False)  # shapes other tests rendered
    with assert_queries(6) as log:
        pages = [await base.paginate(n, 10) for n in (1, 3, 2)]
    assert [len(p.items) for p in pages] == [10, 5, 10]
    assert pages[1].items[0].name == "u20" and pages[2].items[-1].name == "u19"
    assert len(set(log.statements)) == 2  # one count and one page statement, reused
    assert len(rendered) == 1  # the page SQL, rendered once for all three pages
    # Variants are new builders with their own SQL; the base keeps its own.
    assert await base.where("age < ?", 100).count() == 10
    assert await base.count() == 25
    assert [u.age for u in await base.limit(2).all()] == [0, 10]
    assert len(await base.all()) == 25


@pytestmark_db
async def test_pluck_and_aggregates() -> None:
    await _seed(5)
    assert await User.query().order_by("age").pluck("age") == [0, 10, 20, 30, 40]
    assert await User.query().sum("age") == 100
    assert await User.query().max("age") == 40
    assert await User.query().min("age") == 0
    assert float(await User.query().avg("age")) == 20.0
    with pytest.raises(ValidationError):
        await User.query().sum("age); drop table x; --")


@pytestmark_db
async def test_query_update_and_delete() -> None:
    await _seed(5)
    assert await User.query().where("age < ?", 20).update(age=18) == 2
    assert await User.query().where(age=18).count() == 2
    with pytest.raises(ValidationError):
        await User.query().update(age="old")
    with pytest.raises(ValidationError):
        await User.query().update(name=None)
    with pytest.raises(ValidationError):
        await User.query().update(nope=1)
    with pytest.raises(ValidationError):
        await User.query().limit(1).update(age=1)
    assert await User.query().where("age > ?", 200).delete() == 0
    assert await User.query().where("age >= ?", 30).delete() == 2
    assert await User.query().count() == 3


@pytestmark_db
async def test_iterate_streams_through_a_cursor() -> None:
    await _seed(23)
    seen = [u.name async for u in User.query().order_by("id").iterate(batch=5)]
    assert seen == [f"u{i:02d}" for i in range(23)]
    async with transaction():  # inside a transaction it uses that connection
        seen_in_tx = [u.id async for u in User.query().where("age < ?", 50).iterate(batch=2)]
    assert len(seen_in_tx) == 5
    with pytest.raises(ValidationError):
        async for _ in User.query().iterate(batch=0):
            pass


@pytestmark_db
async def test_join_keeps_extra_columns_and_records_without_model() -> None:
    users = await _seed(2)
    await Video(title="v1", user_id=users[0].id, views=7).save()
    rows = await (
        User.query()
        .select("users.*", "v.title as video_title")
        .join("orm.videos v", "v.user_id = users.id")
        .where("v.views > ?", 5)
        .all()
    )
    assert len(rows) == 1 and rows[0].name == "u00" and rows[0].get("video_title") == "v1"
    recs = await Db.query("orm.users").where("age > ?", 5).order_by("age").all()
    assert isinstance(recs[0], Record) and recs[0].name == "u01"

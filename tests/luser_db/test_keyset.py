"""Keyset pages and paginate() count strategies, on real rows."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from luser_common import ValidationError
from luser_db import Db, Field, Model
from luser_db.keyset import InvalidCursor, set_cursor_secret
from luser_db.testing import assert_queries


class Video(Model, table="orm.videos", soft_delete=True):
    id: int = Field(primary_key=True)
    user_id: int | None = None
    title: str
    views: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None


BASE = datetime(2026, 1, 1, tzinfo=UTC)


async def _videos(n: int) -> None:
    # Views repeat (i % 7) and created_at repeats (i // 3): neither ordering is unique alone.
    rows = [
        {"title": f"v{i}", "views": i % 7, "created_at": BASE + timedelta(hours=i // 3)}
        for i in range(n)
    ]
    await Video.batch_save([Video(**r) for r in rows])


async def _walk(q: Any, size: int) -> list[int]:
    ids: list[int] = []
    cursor = None
    for _ in range(1000):  # a walk that never ends is a failure, not a hang
        page = await q.keyset(size=size, after=cursor)
        ids.extend(v.id for v in page.items)
        if not page.has_more:
            assert page.next_cursor is None
            return ids
        cursor = page.next_cursor
    raise AssertionError("keyset walk did not end")


@pytest.mark.parametrize(
    ("order", "tiebreak"),
    [
        (("created_at desc", "id desc"), ()),
        (("created_at desc",), ("id desc",)),  # the primary key is appended, same direction
        (("views", "-id"), ()),
        (("views desc", "title"), ("id",)),
    ],
)
async def test_keyset_walk_matches_offset_order(
    orm_schema: str, db_tx: Any, order: Any, tiebreak: Any
) -> None:
    await _videos(50)
    gone = await Video.query().where(title="v10").first()
    assert gone is not None
    await gone.delete()
    q = Video.query().where("views <> ?", 3).order_by(*order)
    expected = [v.id for v in await q.order_by(*tiebreak).all()]
    assert await _walk(q, 7) == expected
    assert len(expected) == len(set(expected)) == 50 - 1 - 7 + (1 if 10 % 7 == 3 else 0)


async def test_first_page_and_cursor_shape(orm_schema: str, db_tx: Any) -> None:
    await _videos(5)
    q = Video.query().order_by("created_at desc", "id desc")
    with assert_queries(1):
        page = await q.keyset(size=2)
    assert page.has_more and len(page.items) == 2 and page.next_cursor
    last = await q.keyset(size=10, after=page.next_cursor)
    assert [v.title for v in last.items] == ["v2", "v1", "v0"]
    assert not last.has_more and last.next_cursor is None


async def test_or_where_stays_grouped_before_the_cursor(orm_schema: str, db_tx: Any) -> None:
    await _videos(20)
    q = Video.query().where("views = ?", 1).or_where("views = ?", 2).order_by("id")
    expected = [v.id for v in await q.all()]
    assert await _walk(q, 2) == expected


async def test_tampered_and_foreign_cursors_are_422(orm_schema: str, db_tx: Any) -> None:
    await _videos(5)
    q = Video.query().order_by("created_at desc", "id desc")
    cursor = (await q.keyset(size=2)).next_cursor
    assert cursor is not None
    body, sig = cursor.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload[1][-1] = 1  # jump to another id
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    for bad in (f"{forged}.{sig}", "garbage", "a.b", cursor[:-2] + "AA", 42):
        with pytest.raises(InvalidCursor) as info:
            await q.keyset(size=2, after=bad)  # type: ignore[arg-type]
        assert info.value.status_code == 422 and info.value.code == "INVALID_CURSOR"
    other = Video.query().order_by("views", "id")
    with pytest.raises(InvalidCursor, match="排序"):
        await other.keyset(size=2, after=cursor)
    assert (await q.keyset(size=2, after=cursor)).items  # the real one still works


async def test_cursor_from_another_key_is_refused(orm_schema: str, db_tx: Any) -> None:
    await _videos(3)
    q = Video.query().order_by("id")
    try:
        set_cursor_secret("key-one")
        cursor = (await q.keyset(size=1)).next_cursor
        set_cursor_secret("key-two")
        with pytest.raises(InvalidCursor):
            await q.keyset(size=1, after=cursor)
    finally:
        set_cursor_secret(None)


async def test_keyset_bad_input(orm_schema: str) -> None:
    with pytest.raises(ValidationError, match="size"):
        await Video.query().keyset(size=0)
    with pytest.raises(ValidationError, match="limit"):
        await Video.query().limit(3).keyset(size=2)
    with pytest.raises(ValidationError, match="NULLS"):
        await Video.query().order_by("views nulls last").keyset(size=2)


async def test_keyset_null_key_value_is_a_clear_error(orm_schema: str, db_tx: Any) -> None:
    await Db.execute("insert into orm.videos (title) values ('a'), ('b')")
    with pytest.raises(ValidationError, match="NOT NULL"):
        await Video.query().order_by("created_at").keyset(size=1)


async def test_paginate_count_strategies(orm_schema: str, db_tx: Any) -> None:
    await _videos(25)
    await Db.execute("analyze orm.videos")
    q = Video.query().order_by("id")
    with assert_queries(1) as log:
        page = await q.paginate(2, 10, count="none")
    assert "count(" not in log.statements[0]
    assert len(page.items) == 10 and page.total_row == 21 and not page.is_last_page
    last = await q.paginate(3, 10, count="none")
    assert len(last.items) == 5 and last.total_row == 25 and last.is_last_page
    with assert_queries(2) as log:
        est = await q.paginate(1, 10, count="estimate")
    assert log.statements[1].startswith("EXPLAIN")
    assert est.total_row >= 11 and not est.is_last_page
    assert (await q.paginate(3, 10, count="estimate")).total_row == 25
    assert (await q.paginate(1, 10)).total_row == 25
    with pytest.raises(ValidationError, match="count"):
        await q.paginate(1, 10, count="fast")


async def test_cursor_secret_from_config(orm_schema: str, db_tx: Any, tmp_path: Any) -> None:
    import luser_config

    (tmp_path / "default.toml").write_text(
        f'[database]\nurl = "{orm_schema}"\ncursor_secret = "from-config"\n'
    )
    await luser_config.init_config(env="test", config_dir=tmp_path)
    try:
        await _videos(3)
        set_cursor_secret(None)  # back to config, read on next use
        q = Video.query().order_by("id")
        cursor = (await q.keyset(size=1)).next_cursor
        set_cursor_secret("from-config")
        assert (await q.keyset(size=1, after=cursor)).items
        set_cursor_secret("another")
        with pytest.raises(InvalidCursor):
            await q.keyset(size=1, after=cursor)
    finally:
        set_cursor_secret(None)
        luser_config.reset_config()


async def test_keyset_with_join_and_partial_select(orm_schema: str, db_tx: Any) -> None:
    await Db.execute("insert into orm.users (id, name, email) values (1, 'u', 'u@x')")
    await Db.execute("insert into orm.videos (user_id, title) values (1, 'a'), (1, 'b'), (1, 'c')")
    q = Video.query().join("orm.users u", "u.id = videos.user_id").order_by("id")
    first = await q.keyset(size=2)  # "id" exists in both tables: the keyset SQL qualifies it
    rest = await q.keyset(size=2, after=first.next_cursor)
    assert [v.title for v in [*first.items, *rest.items]] == ["a", "b", "c"]
    with pytest.raises(ValidationError, match="id"):
        await Video.query().select("title").order_by("title").keyset(size=1)


async def test_keyset_over_a_composite_key_appends_every_key_part(db_pool: str) -> None:
    from luser_db import Db, Field, Model

    class Line(Model, table="keyset_lines"):
        order_id: int = Field(primary_key=True, generated=False)
        line_no: int = Field(primary_key=True, generated=False)
        qty: int = 0

    await Db.execute("drop table if exists keyset_lines")
    await Db.execute(
        "create table keyset_lines (order_id int, line_no int, qty int not null default 0,"
        " primary key (order_id, line_no))"
    )
    try:
        await Db.copy_records("keyset_lines", [(o, n, 1) for o in range(1, 4) for n in range(1, 4)])
        seen: list[tuple[int, int]] = []
        cursor = None
        while True:
            page = await Line.query().order_by("qty").keyset(size=4, after=cursor)
            seen += [(x.order_id, x.line_no) for x in page.items]
            if not page.has_more:
                break
            cursor = page.next_cursor
        assert seen == [(o, n) for o in range(1, 4) for n in range(1, 4)]
    finally:
        await Db.execute("drop table keyset_lines")

"""Checked by ``mypy --strict`` (tests/typing/test_typing.py), never run by pytest.

Every ``# type: ignore[code]`` below marks an error the type checker must report on
that line: the test runs mypy with ``warn_unused_ignores``, so an ignore that is no
longer needed (the checker stopped catching the mistake) fails, and it also runs a
copy without the ignores and compares the reported errors line by line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, assert_type

from luser_common import Page
from luser_db import Field, Model, QueryBuilder


class User(Model, table="typing_users"):
    id: int = Field(primary_key=True)
    name: str
    age: int = 0
    nickname: str | None = None
    profile: dict[str, Any] | None = None
    created_at: datetime | None = None


class Admin(User, table="typing_admins"):
    level: int


class Line(Model, table="typing_lines"):
    order_id: int = Field(primary_key=True)
    line_no: int = Field(primary_key=True)
    sku: str


async def positives() -> None:
    user = User(name="ann")
    assert_type(user.name, str)
    assert_type(user.nickname, str | None)
    assert_type(User(name="bob", age=3, id=7, nickname=None), User)
    assert_type(Admin(name="x", level=2), Admin)
    assert_type(Line(order_id=1, line_no=2, sku="s"), Line)
    assert_type(User.query(), QueryBuilder[User])
    assert_type(await User.query().all(), list[User])
    assert_type(await User.query().where("age > ?", 18).order_by("id").all(), list[User])
    assert_type(await User.query().first(), User | None)
    assert_type(await User.query(), list[User])
    assert_type(await User.query().paginate(1, 20), Page[User])
    assert_type(await User.find_by_id(1), User | None)
    assert_type(await Line.find_by_id((1, 2)), Line | None)
    assert_type(await User.find_by_ids([1, 2]), list[User])
    assert_type(await User.find("select * from typing_users"), list[User])
    assert_type(await Admin.query().all(), list[Admin])
    assert_type(user.set("age", 4), User)


def mistakes() -> None:
    User(nam="x")  # type: ignore[call-arg]
    User(name="x", age="x")  # type: ignore[arg-type]
    User()  # type: ignore[call-arg]
    Admin(name="x")  # type: ignore[call-arg]
    Line(order_id=1, line_no="2", sku="s")  # type: ignore[arg-type]
    user = User(name="ann")
    user.age = "old"  # type: ignore[assignment]
    user.nam = "x"  # type: ignore[attr-defined]

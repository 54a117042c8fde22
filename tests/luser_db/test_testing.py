"""luser_db.testing: db_tx rolls back and app code joins it; assert_queries counts."""

from __future__ import annotations

import pytest

import luser_db
from luser_db import Db, in_transaction, transaction
from luser_db.testing import assert_queries

pytestmark = pytest.mark.usefixtures("orm_schema")

MARK = "testing-fixture-row"


async def _app_code_that_writes() -> None:
    # What a service function looks like: no connection argument, its own transaction().
    async with transaction():
        await Db.execute("insert into orm.users(name, email) values (?, ?)", MARK, MARK)


async def test_db_tx_part_one_writes(db_tx: object) -> None:
    assert in_transaction()
    await _app_code_that_writes()
    assert await Db.query_int("select count(*) from orm.users where name = ?", MARK) == 1


async def test_db_tx_part_two_sees_nothing(db_tx: object) -> None:
    assert await Db.query_int("select count(*) from orm.users where name = ?", MARK) == 0


async def test_assert_queries_counts_and_fails(db_tx: object) -> None:
    with assert_queries(2) as log:
        await Db.query_int("select 1")
        await Db.find("select 2")
    assert log.statements == ["select 1", "select 2"]
    with pytest.raises(AssertionError, match="expected 1 queries, got 2"), assert_queries(1):
        await Db.query_int("select 1")
        await Db.query_int("select 1")


def test_exported_members() -> None:
    public = {name for name in dir(luser_db) if not name.startswith("_")}
    modules = {
        "bulk",
        "db",
        "embedded",
        "errors",
        "fields",
        "keyset",
        "model",
        "query",
        "record",
        "relations",
        "testing",
        "cli",
        "migrations",
        "types",
        "templates",
        "template_check",
        "generate",
    }
    assert set(luser_db.__all__) == public - modules
    assert luser_db.__all__ == sorted(luser_db.__all__)

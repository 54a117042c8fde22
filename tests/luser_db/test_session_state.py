"""Session state never leaks to the next borrower of a pooled connection (issue 13)."""

from __future__ import annotations

import pytest

import luser_db
from luser_db import Db


@pytest.mark.parametrize(
    ("sql", "probe", "default"),
    [
        ("select 1; set statement_timeout = 1", "show statement_timeout", "0"),
        ("select 1; set search_path = pg_catalog", "show search_path", '"$user", public'),
        (
            "select 1;\n-- a comment; still one statement\nset work_mem = '7MB'",
            "show work_mem",
            None,
        ),
        ("select ';'; set application_name = 'leak'", "show application_name", ""),
    ],
)
async def test_any_statement_of_a_multi_statement_string_marks_the_session(
    own_pool: str, sql: str, probe: str, default: str | None
) -> None:
    luser_db.init(own_pool, min_size=1, max_size=1)  # one connection: the next use reuses it
    before = await Db.query_str(probe)
    await Db.execute(sql)
    assert await Db.query_str(probe) == (default if default is not None else before)


async def test_temporary_tables_do_not_survive_the_release(own_pool: str) -> None:
    luser_db.init(own_pool, min_size=1, max_size=1)
    await Db.execute("create temp table scratch_a (x int)")
    assert await Db.query_value("select to_regclass('pg_temp.scratch_a')") is None
    async with luser_db.connection() as conn:
        await conn.execute("create temp table scratch_b (x int)")
    assert await Db.query_value("select to_regclass('pg_temp.scratch_b')") is None
    pool = await luser_db.get_pool()
    async with pool.acquire() as raw:  # straight from the pool, unseen by luser_db
        await raw.execute("create temp table scratch_c (x int)")
    assert await Db.query_value("select to_regclass('pg_temp.scratch_c')") is None

"""``luser_db.direct_connection()``: a session of its own, outside the pool and any
transaction, for statements PostgreSQL refuses in a transaction block."""

from __future__ import annotations

import pytest

import luser_db
from luser_common import AppError
from luser_db import Db, transaction

_SCHEMA = """
DROP TABLE IF EXISTS orm.parted;
CREATE TABLE orm.parted (at int NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE orm.parted_1 PARTITION OF orm.parted FOR VALUES FROM (0) TO (10);
CREATE TABLE orm.parted_2 PARTITION OF orm.parted FOR VALUES FROM (10) TO (20);
"""


async def test_detach_concurrently_runs_outside_the_transaction(orm_schema: str) -> None:
    await Db.execute(_SCHEMA)
    detach = "ALTER TABLE orm.parted DETACH PARTITION orm.parted_1 CONCURRENTLY"
    with pytest.raises(AppError):  # inside transaction(): refused by PostgreSQL
        async with transaction(), luser_db.connection() as conn:
            await conn.execute(detach)
    # An enclosing transaction is not joined.
    async with transaction(), luser_db.direct_connection() as conn:
        assert not conn.in_transaction()
        await conn.execute(detach)
    parts = await Db.query_value(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'orm.parted'::regclass"
    )
    assert parts == 1
    await Db.execute("DROP TABLE orm.parted, orm.parted_1")


async def test_session_settings_end_with_the_block(orm_schema: str) -> None:
    async with luser_db.direct_connection() as conn:
        await conn.execute("SET lock_timeout = 1234")
        assert await conn.fetchval("SHOW lock_timeout") == "1234ms"
    assert await Db.query_value("SHOW lock_timeout") == "0"  # never a pooled session

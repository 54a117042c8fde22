"""The luser_db.sql logger, slow statements, on_query listeners and LIKE escaping."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

import luser_db
from luser_db import Db, QueryEvent, configure_sql_log, like_contains, like_escape, on_query

pytestmark = pytest.mark.usefixtures("orm_schema")


@pytest.fixture(autouse=True)
def defaults() -> Iterator[None]:
    yield
    from luser_db._observe import reset_sql_log

    reset_sql_log()


def _sql_records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "luser_db.sql" and r.levelno == level]


async def test_debug_log_has_duration_rows_source_and_masked_values(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="luser_db.sql")
    await Db.find("select ? as secret union all select ?", "hunter2", "other")
    (record,) = _sql_records(caplog, logging.DEBUG)
    text = record.getMessage()
    assert " ms rows=2 source=default params=2 values=***, ***" in text
    assert "hunter2" not in text and "select $1 as secret" in text
    caplog.clear()
    configure_sql_log(log_parameters=True)
    await Db.find("select ? as secret", "hunter2")
    (record,) = _sql_records(caplog, logging.DEBUG)
    assert "values='hunter2'" in record.getMessage()


async def test_nothing_is_logged_below_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="luser_db.sql")
    await Db.find("select 1")
    assert _sql_records(caplog, logging.DEBUG) == []


async def test_turning_debug_on_after_statements_logs_the_next_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The executor's fast-path test reads the logger's cached "DEBUG is off" answer:
    # a level change must reach every path (BEGIN/COMMIT, in and out of a transaction).
    caplog.set_level(logging.INFO, logger="luser_db.sql")
    for _ in range(2):  # the second round runs with the "off" answer cached
        async with luser_db.transaction():
            await Db.execute("select 1")
        await Db.execute("select 2")
    assert _sql_records(caplog, logging.DEBUG) == []
    caplog.set_level(logging.DEBUG, logger="luser_db.sql")
    async with luser_db.transaction():
        await Db.execute("select 1")
    await Db.execute("select 2")
    logged = [r.getMessage().rsplit("| ", 1)[-1] for r in _sql_records(caplog, logging.DEBUG)]
    assert logged == ["BEGIN", "select 1", "COMMIT", "select 2"]


async def test_slow_statements_are_warned_with_the_callers_location(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="luser_db.sql")
    configure_sql_log(slow_query_ms=100)
    await Db.execute("select 1")
    assert _sql_records(caplog, logging.WARNING) == []
    await Db.execute("select pg_sleep(0.15)")
    (record,) = _sql_records(caplog, logging.WARNING)
    text = record.getMessage()
    assert "slow statement" in text and "pg_sleep" in text
    assert f"{Path(__file__)}:" in text and "in test_slow_statements" in text


async def test_slow_query_ms_config_key_applies_when_the_pool_opens(
    own_pool: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import luser_config

    (tmp_path / "default.toml").write_text(
        f'[database]\nurl = "{own_pool}"\nmin_connections = 0\nslow_query_ms = 100\n'
        "log_parameters = true\n"
    )
    await luser_config.init_config(env="test", config_dir=tmp_path)
    caplog.set_level(logging.DEBUG, logger="luser_db.sql")
    try:
        await Db.execute("select pg_sleep(0.15), ?::text", "shown")
    finally:
        luser_config.reset_config()
    (slow,) = _sql_records(caplog, logging.WARNING)
    assert "threshold 100 ms" in slow.getMessage()
    assert "values='shown'" in _sql_records(caplog, logging.DEBUG)[-1].getMessage()


async def test_a_failing_listener_does_not_fail_the_query(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[QueryEvent] = []

    def broken(event: QueryEvent) -> None:
        raise RuntimeError("metrics bug")

    task = asyncio.current_task()  # this task's statements only (background jobs run too)
    remove_broken = on_query(broken)
    remove_seen = on_query(
        lambda event: seen.append(event) if asyncio.current_task() is task else None
    )
    try:
        assert await Db.query_int("select 7") == 7
    finally:
        remove_broken()
        remove_seen()
    assert [e.kind for e in seen] == ["select"]
    assert any("on_query listener failed" in r.getMessage() for r in caplog.records)
    await Db.query_int("select 8")
    assert len(seen) == 1  # removed


async def test_like_escaping_matches_wildcards_literally() -> None:
    assert like_escape("50%_off\\") == "50\\%\\_off\\\\"
    async with luser_db.transaction():
        await Db.execute("create temp table likes_t (v text) on commit drop")
        for value in ("50% off", "50 off", "a_b", "axb", "back\\slash"):
            await Db.execute("insert into likes_t values (?)", value)
        for term, expected in (("50%", ["50% off"]), ("a_b", ["a_b"]), ("\\", ["back\\slash"])):
            rows = await Db.query("likes_t").where_like("v", like_contains(term)).all()
            assert [r["v"] for r in rows] == expected

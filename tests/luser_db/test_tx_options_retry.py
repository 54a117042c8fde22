"""transaction() options through SET LOCAL, COMMIT under cancellation, and retry()."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
import pytest_asyncio

from luser_common import (
    Conflict,
    DatabaseUnavailable,
    DuplicateError,
    TimeoutError,
    ValidationError,
)
from luser_db import CommitUncertain, Db, on_commit, retry, transaction

pytestmark = pytest.mark.usefixtures("clean_tables")

PROBE_SQL = """
CREATE TABLE IF NOT EXISTS orm.commit_probe (id int PRIMARY KEY);
CREATE OR REPLACE FUNCTION orm.wait_for_gate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(424242);  -- runs at COMMIT: blocks while the test holds it
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS commit_gate ON orm.commit_probe;
CREATE CONSTRAINT TRIGGER commit_gate AFTER INSERT ON orm.commit_probe
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION orm.wait_for_gate();
TRUNCATE orm.commit_probe;
"""


async def test_options_are_local_to_the_transaction() -> None:
    async with transaction(
        synchronous_commit=False, statement_timeout=2.5, lock_timeout=timedelta(milliseconds=80)
    ):
        assert await Db.query_str("show synchronous_commit") == "off"
        assert await Db.query_str("show statement_timeout") == "2500ms"
        assert await Db.query_str("show lock_timeout") == "80ms"
    assert await Db.query_str("show synchronous_commit") == "on"
    assert await Db.query_str("show statement_timeout") == "0"
    async with transaction(synchronous_commit="local"):
        assert await Db.query_str("show synchronous_commit") == "local"


async def test_statement_timeout_option_cancels_a_slow_statement() -> None:
    with pytest.raises(TimeoutError):
        async with transaction(statement_timeout=0.05):
            await Db.execute("select pg_sleep(5)")


@pytest.mark.parametrize(
    "options",
    [
        {"synchronous_commit": "sometimes"},
        {"statement_timeout": 0},
        {"lock_timeout": -1},
        {"statement_timeout": "1s"},
        {"lock_timeout": True},
    ],
)
def test_bad_options_are_refused_before_anything_runs(options: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        transaction(**options)  # type: ignore[arg-type]


@pytest_asyncio.fixture(loop_scope="session")
async def gate(orm_schema: str) -> AsyncIterator[asyncpg.Connection]:
    """A table whose COMMIT waits for advisory lock 424242, held by the yielded connection."""
    conn = await asyncpg.connect(orm_schema)
    try:
        await conn.execute(PROBE_SQL)
        await conn.execute("select pg_advisory_lock(424242)")
        yield conn
    finally:
        await conn.execute("select pg_advisory_unlock_all()")
        await conn.execute("drop table if exists orm.commit_probe")
        await conn.close()


async def _until_commit_waits(conn: asyncpg.Connection) -> int:
    """The pid of the backend whose COMMIT waits on the gate (polled with a deadline)."""
    async with asyncio.timeout(20):
        while True:
            pid = await conn.fetchval(
                "select pid from pg_stat_activity where wait_event_type = 'Lock'"
                " and query ilike 'commit%'"
            )
            if pid is not None:
                return int(pid)
            await asyncio.sleep(0.01)


async def test_a_task_cancelled_during_commit_reports_the_real_outcome(
    gate: asyncpg.Connection,
) -> None:
    committed = asyncio.Event()

    async def work() -> None:
        async with transaction():
            await Db.execute("insert into orm.commit_probe values (1)")
            on_commit(committed.set)

    task = asyncio.create_task(work())
    await _until_commit_waits(gate)
    task.cancel()
    await gate.execute("select pg_advisory_unlock(424242)")
    with pytest.raises(asyncio.CancelledError):
        await task
    # The cancellation did not cut COMMIT short: it finished, and said so.
    assert committed.is_set()
    assert await Db.query_int("select count(*) from orm.commit_probe") == 1


async def test_a_connection_killed_during_commit_is_never_reported_as_success(
    gate: asyncpg.Connection,
) -> None:
    task = asyncio.create_task(_insert_probe())
    pid = await _until_commit_waits(gate)
    await gate.execute("select pg_terminate_backend($1)", pid)
    # The server answered COMMIT with "terminating connection": a definite failure (503),
    # never a silent success; a reply lost on the wire would be CommitUncertain instead.
    with pytest.raises(DatabaseUnavailable) as info:
        await task
    assert info.value.status_code == 503
    assert await Db.query_int("select count(*) from orm.commit_probe") == 0


async def _insert_probe() -> None:
    async with transaction():
        await Db.execute("insert into orm.commit_probe values (1)")


# -- retry -------------------------------------------------------------------------


async def test_retry_runs_again_after_a_lock_timeout(clean_tables: str) -> None:
    await Db.execute("insert into orm.counters (id, n) values (1, 0)")
    holder = await asyncpg.connect(clean_tables)
    tx = holder.transaction()
    await tx.start()
    await holder.execute("update orm.counters set n = n where id = 1")  # row lock held
    calls = 0

    async def bump() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            await tx.rollback()  # the holder lets go before the second attempt's UPDATE
        async with transaction(lock_timeout=0.05):
            await Db.execute("update orm.counters set n = n + 1 where id = 1")

    try:
        await retry(bump, attempts=3, backoff=lambda attempt: 0)
    finally:
        await holder.close()
    assert calls == 2
    assert await Db.query_int("select n from orm.counters where id = 1") == 1


async def test_retry_gives_up_after_the_last_attempt_with_the_last_error() -> None:
    calls = 0

    async def always_conflicts() -> None:
        nonlocal calls
        calls += 1
        raise Conflict("并发冲突, 请重试", retryable=True)

    with pytest.raises(Conflict):
        await retry(always_conflicts, attempts=3, backoff=lambda attempt: 0)
    assert calls == 3


async def test_retry_raises_a_non_retryable_error_at_once() -> None:
    await Db.execute("insert into orm.counters (id, n) values (7, 0)")
    calls = 0

    async def duplicate() -> None:
        nonlocal calls
        calls += 1
        await Db.execute("insert into orm.counters (id, n) values (7, 0)")

    with pytest.raises(DuplicateError):
        await retry(duplicate, attempts=5, backoff=lambda attempt: 0)
    assert calls == 1
    with pytest.raises(ValidationError):
        await retry(duplicate, attempts=0)


async def test_commit_uncertain_is_retried_only_for_idempotent_work() -> None:
    calls = 0

    async def lost_once() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise CommitUncertain()
        return "done"

    with pytest.raises(CommitUncertain):
        await retry(lost_once, backoff=lambda attempt: 0)
    assert calls == 1
    assert await retry(lost_once, idempotent=True, backoff=lambda attempt: 0) == "done"
    assert calls == 2


async def test_retry_inside_a_transaction_runs_once() -> None:
    calls = 0

    async def conflict() -> None:
        nonlocal calls
        calls += 1
        raise Conflict("并发冲突, 请重试", retryable=True)

    with pytest.raises(Conflict):
        async with transaction():
            await retry(conflict, backoff=lambda attempt: 0)
    assert calls == 1

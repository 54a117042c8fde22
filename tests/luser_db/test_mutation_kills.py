"""Tests written to kill mutants that survived the mutation run (see docs/mutation.md).

Each test names the behaviour it pins; the mutants it kills are listed in the doc.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

import luser_db
from luser_common import (
    AppError,
    Conflict,
    DatabaseUnavailable,
    DuplicateError,
    InternalServerError,
    ValidationError,
)
from luser_common import TimeoutError as AppTimeoutError
from luser_db import (
    CommitUncertain,
    Db,
    QueryEvent,
    current_connection,
    in_transaction,
    on_commit,
    on_query,
    retry_transaction,
    transaction,
)
from luser_db._exec import rowcount
from luser_db._transaction import _to_the_end
from luser_db.errors import PoolClosed, failure, is_retryable, sqlstate, translate, unavailable

pytestmark = pytest.mark.usefixtures("clean_tables")

SECOND = "mutation_second"


def mine(listener: Callable[[QueryEvent], None]) -> Callable[[QueryEvent], None]:
    """``listener`` for this task's statements only: background jobs that earlier tests'
    app fixtures started (the open API's config poll) run in other tasks meanwhile."""
    task = asyncio.current_task()
    return lambda event: listener(event) if asyncio.current_task() is task else None


@pytest_asyncio.fixture(loop_scope="session")
async def second_source(orm_schema: str) -> AsyncIterator[str]:
    """A second data source on the same database: one connection, a short acquire timeout."""
    luser_db.init(orm_schema, name=SECOND, min_size=0, max_size=1, acquire_timeout=0.2)
    yield SECOND


async def _turns(n: int = 5) -> None:
    """Let the event loop run ``n`` times (not a sleep: no clock is involved)."""
    for _ in range(n):
        await asyncio.sleep(0)


# -- transaction(): what it reports, what it sets --------------------------------------


async def test_transaction_steps_reach_on_query_by_name_and_source() -> None:
    events: list[tuple[str, str]] = []

    def record(event: QueryEvent) -> None:
        events.append((event.sql, event.source))

    remove = on_query(mine(record))
    try:
        async with transaction(statement_timeout=5):
            assert await Db.query_int("SELECT 41 + 1") == 42
            async with transaction(lock_timeout=1):
                pass
            with pytest.raises(ZeroDivisionError):
                async with transaction():
                    raise ZeroDivisionError
        with pytest.raises(ZeroDivisionError):
            async with transaction():
                raise ZeroDivisionError
    finally:
        remove()
    settings = "SELECT set_config($1, $2, true)"
    assert events == [
        ("BEGIN", "default"),
        (settings, "default"),
        ("SELECT 41 + 1", "default"),
        ("SAVEPOINT", "default"),
        (settings, "default"),
        ("RELEASE SAVEPOINT", "default"),
        ("SAVEPOINT", "default"),
        ("ROLLBACK TO SAVEPOINT", "default"),
        ("COMMIT", "default"),
        ("BEGIN", "default"),
        ("ROLLBACK", "default"),
    ]


async def test_settings_of_a_savepoint_apply_on_the_transactions_connection() -> None:
    async with transaction(), transaction(statement_timeout=0.25, lock_timeout=0.0001):
        assert await Db.query_str("SHOW statement_timeout") == "250ms"
        # Rounded to the millisecond, never below 1 ms (0 would mean "no timeout").
        assert await Db.query_str("SHOW lock_timeout") == "1ms"


async def test_synchronous_commit_booleans_become_on_and_off() -> None:
    async with transaction(synchronous_commit=False):
        assert await Db.query_str("SHOW synchronous_commit") == "off"
    async with transaction(synchronous_commit=True):
        assert await Db.query_str("SHOW synchronous_commit") == "on"


async def test_deferrable_is_passed_to_begin_and_off_by_default() -> None:
    async with transaction(isolation="serializable", readonly=True, deferrable=True):
        assert await Db.query_str("SHOW transaction_deferrable") == "on"
    async with transaction(isolation="serializable", readonly=True):
        assert await Db.query_str("SHOW transaction_deferrable") == "off"


@pytest.mark.parametrize(
    ("options", "field", "quoted"),
    [
        ({"isolation": "chaos"}, "isolation", "chaos"),
        ({"synchronous_commit": "sometimes"}, "synchronous_commit", "on, off, local"),
        ({"statement_timeout": 0}, "statement_timeout", "statement_timeout"),
        ({"lock_timeout": -1}, "lock_timeout", "lock_timeout"),
    ],
)
def test_bad_transaction_options_name_their_field(
    options: dict[str, Any], field: str, quoted: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        transaction(**options)
    assert caught.value.field == field
    assert quoted in caught.value.message


async def test_on_commit_outside_a_transaction_says_so() -> None:
    with pytest.raises(InternalServerError) as caught:
        on_commit(lambda: None)
    assert "on_commit" in caught.value.message


async def test_current_connection_is_the_transactions_own() -> None:
    assert current_connection() is None
    async with transaction():
        conn = current_connection()
        assert conn is not None
        pid = await Db.query_int("SELECT pg_backend_pid()")
        assert await conn.fetchval("SELECT pg_backend_pid()") == pid


async def test_a_task_that_outlives_its_transaction_goes_to_the_pool() -> None:
    ended = asyncio.Event()

    async def later() -> tuple[bool, int | None]:
        await ended.wait()
        return in_transaction(), await Db.query_int("SELECT 1")

    async with transaction():
        task = asyncio.create_task(later())
    ended.set()
    async with asyncio.timeout(5):
        assert await task == (False, 1)


async def test_transaction_on_an_exhausted_source_times_out(second_source: str) -> None:
    held, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with transaction(using=second_source):
            held.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    try:
        async with asyncio.timeout(5):
            await held.wait()
            with pytest.raises(DatabaseUnavailable) as caught:
                async with transaction(using=second_source):
                    pass
            assert caught.value.message == "获取数据库连接超时, 请稍后重试"
    finally:
        release.set()
        await holder


async def test_a_transaction_that_fails_to_start_returns_its_connection(
    second_source: str,
) -> None:
    # The server refuses the SET LOCAL after BEGIN (out of range): __aenter__ fails, and
    # the source's only connection must be back in the pool.
    with pytest.raises(ValidationError):
        async with transaction(using=second_source, statement_timeout=1e12):
            pass
    async with asyncio.timeout(5), transaction(using=second_source):
        assert in_transaction(second_source)


# -- _to_the_end(): COMMIT driven to its end ---------------------------------------------


async def test_to_the_end_gives_the_loop_a_turn_on_a_bare_yield() -> None:
    steps: list[int] = []

    async def work() -> None:
        steps.append(1)
        await asyncio.sleep(0)  # a bare yield
        steps.append(2)

    task = asyncio.create_task(_to_the_end(work()))
    await _turns()
    assert task.done()
    assert steps == [1, 2]
    assert task.result() is None


async def test_to_the_end_finishes_a_future_wait_that_the_task_cancel_hit() -> None:
    # COMMIT's reply is a future the driver waits on: a cancelled task must neither
    # cancel that future nor stop waiting for it, and must report the cancellation.
    reply: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def work() -> None:
        seen.append(await reply)

    task = asyncio.create_task(_to_the_end(work()))
    await _turns()
    task.cancel()
    task.cancel()  # twice: still one wait, one report
    await _turns()
    assert not task.done() and not reply.cancelled()
    reply.set_result("COMMIT")
    await _turns()
    assert seen == ["COMMIT"]
    assert isinstance(task.result(), asyncio.CancelledError)


async def test_to_the_end_raises_the_awaited_failure_not_the_cancellation() -> None:
    reply: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def work() -> None:
        await reply

    task = asyncio.create_task(_to_the_end(work()))
    await _turns()
    task.cancel()
    reply.set_exception(ConnectionResetError("lost during COMMIT"))
    with pytest.raises(ConnectionResetError):
        await task


async def test_to_the_end_without_a_cancellation_returns_none() -> None:
    reply: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    out: list[int] = []

    async def work() -> None:
        out.append(await reply)
        out.append(await asyncio.sleep(0, 7))

    task = asyncio.create_task(_to_the_end(work()))
    await _turns()
    reply.set_result(1)
    assert await task is None
    assert out == [1, 7]


async def test_to_the_end_returns_a_cancellation_that_hit_a_bare_yield() -> None:
    steps: list[int] = []

    async def work() -> None:
        steps.append(1)
        await asyncio.sleep(0)
        steps.append(2)

    task = asyncio.create_task(_to_the_end(work()))
    await asyncio.sleep(0)  # the task runs up to its bare yield
    assert steps == [1]
    task.cancel()
    await _turns()
    assert steps == [1, 2]
    assert isinstance(task.result(), asyncio.CancelledError)


# -- retry_transaction() -----------------------------------------------------------------


async def test_retry_transaction_tries_five_times_by_default() -> None:
    calls = 0

    async def always_conflicts() -> None:
        nonlocal calls
        calls += 1
        raise Conflict("conflict", retryable=True)

    with pytest.raises(Conflict):
        await retry_transaction(always_conflicts, base_delay=0.001, max_delay=0.001)
    assert calls == 5


async def test_retry_transaction_does_not_rerun_an_uncertain_commit_by_default() -> None:
    calls = 0

    async def uncertain() -> None:
        nonlocal calls
        calls += 1
        raise CommitUncertain()

    with pytest.raises(CommitUncertain):
        await retry_transaction(uncertain)
    assert calls == 1


async def test_retry_transaction_reruns_an_uncertain_commit_when_idempotent() -> None:
    calls = 0

    async def uncertain_once() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise CommitUncertain()
        return "done"

    assert await retry_transaction(uncertain_once, idempotent=True, base_delay=0.001) == "done"
    assert calls == 2


async def test_retry_transaction_passes_its_options_to_the_transaction() -> None:
    async def read_only() -> str | None:
        return await Db.query_str("SHOW transaction_read_only")

    assert await retry_transaction(read_only, readonly=True) == "on"


async def test_retry_transaction_inside_a_transaction_runs_fn_as_is() -> None:
    async def insert_then_fail() -> None:
        await Db.execute("INSERT INTO orm.counters (id, n) VALUES (1, 1)")
        raise ZeroDivisionError

    async with transaction():
        with pytest.raises(ZeroDivisionError):
            await retry_transaction(insert_then_fail)
        # No savepoint of its own: the insert stays in the enclosing transaction.
        assert await Db.query_int("SELECT count(*) FROM orm.counters") == 1
        await Db.execute("DELETE FROM orm.counters")


async def test_retry_transaction_runs_on_its_own_source(second_source: str) -> None:
    calls = 0

    async def where_am_i() -> tuple[bool, bool]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Conflict("conflict", retryable=True)
        return in_transaction(second_source), in_transaction()

    # A transaction on the primary source does not stop retries on another source.
    async with transaction():
        result = await retry_transaction(where_am_i, using=second_source, base_delay=0.001)
    assert result == (True, True)
    assert calls == 2


# -- errors.py: the mapping of real PostgreSQL / driver errors ---------------------------


async def _raised(sql: str, *args: Any) -> AppError:
    """The luser error a statement raises through the executor (chained to the driver's)."""
    with pytest.raises(AppError) as caught:
        await Db.execute(sql, *args)
    return caught.value


def _raise_sql(sqlstate: str, **using: str) -> str:
    extra = "".join(f", {key} = '{value}'" for key, value in using.items())
    return f"DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '{sqlstate}'{extra}; END $$"


async def _raw_error(url: str, sql: str) -> BaseException:
    """The driver's own exception for ``sql``, from a real connection."""
    conn = await asyncpg.connect(url)
    try:
        with pytest.raises(asyncpg.PostgresError) as caught:
            await conn.execute(sql)
        return caught.value
    finally:
        await conn.close()


@pytest_asyncio.fixture(loop_scope="session")
async def checks_table(orm_schema: str) -> AsyncIterator[str]:
    await Db.execute(
        "CREATE TABLE orm.mut_checks (n int CHECK (n > 0),"
        " m int CONSTRAINT m_must_be_positive_check CHECK (m > 0), name text)"
    )
    await Db.execute("CREATE UNIQUE INDEX mut_checks_lower_key ON orm.mut_checks (lower(name))")
    try:
        yield orm_schema
    finally:
        await Db.execute("DROP TABLE orm.mut_checks")


async def test_unique_violation_without_a_column_names_its_constraint(checks_table: str) -> None:
    await Db.execute("INSERT INTO orm.mut_checks (n, m, name) VALUES (1, 1, 'a')")
    err = await _raised("INSERT INTO orm.mut_checks (n, m, name) VALUES (1, 1, 'A')")
    assert isinstance(err, DuplicateError)
    assert err.field is None
    assert err.message == "mut_checks_lower_key 已存在 (违反唯一约束 mut_checks_lower_key)"
    assert err.details == {"constraint": "mut_checks_lower_key"}


async def test_check_violations_name_the_column_or_the_constraint(checks_table: str) -> None:
    err = await _raised("INSERT INTO orm.mut_checks (n, m) VALUES (0, 1)")
    assert (err.field, err.message) == ("n", "n 的值不符合检查约束 mut_checks_n_check")
    assert err.details == {"constraint": "mut_checks_n_check"}
    err = await _raised("INSERT INTO orm.mut_checks (n, m) VALUES (1, 0)")
    assert (err.field, err.message) == (
        "m_must_be_positive_check",
        "m_must_be_positive_check 的值不符合检查约束 m_must_be_positive_check",
    )


async def test_foreign_key_violation_names_column_and_constraint() -> None:
    err = await _raised("INSERT INTO orm.videos (user_id, title) VALUES (987654, 't')")
    assert isinstance(err, Conflict)
    assert err.field == "user_id"
    assert err.message == "关联数据不存在或仍被引用 (外键约束 videos_user_fk)"
    assert err.details == {"constraint": "videos_user_fk"}


@pytest.mark.parametrize(
    ("sqlstate", "kind", "field", "message", "details"),
    [
        ("23505", DuplicateError, None, "数据 已存在 (违反唯一约束 )", None),
        ("23502", ValidationError, "?", "? 不能为空", None),
        ("23514", ValidationError, "?", "? 的值不符合检查约束", None),
        ("23503", Conflict, None, "关联数据不存在或仍被引用 (外键约束 )", None),
        ("40001", Conflict, None, "并发冲突, 请重试", {"sqlstate": "40001"}),
        ("22023", ValidationError, None, "数据格式或取值不合法", {"sqlstate": "22023"}),
    ],
)
async def test_errors_without_names_fall_back_to_plain_words(
    orm_schema: str,
    sqlstate: str,
    kind: type[AppError],
    field: str | None,
    message: str,
    details: dict[str, str] | None,
) -> None:
    err = await _raised(_raise_sql(sqlstate))
    assert type(err) is kind
    assert (err.field, err.message, err.details) == (field, message, details)


async def test_a_data_exception_names_the_column_it_reports(orm_schema: str) -> None:
    err = await _raised(_raise_sql("22023", column="amount"))
    assert (err.field, err.details) == ("amount", {"sqlstate": "22023"})


async def test_a_client_side_type_mismatch_is_a_validation_error(orm_schema: str) -> None:
    # asyncpg raises its encoding failure as a PostgresError (SQLSTATE 22000), so it is
    # mapped by the 22xxx rule like any data exception.
    err = await _raised("SELECT ?::int", "not a number")
    assert isinstance(err, ValidationError)
    assert (err.message, err.details) == ("数据格式或取值不合法", {"sqlstate": "22000"})
    assert "not a number" not in str(err.to_dict())


async def test_concurrent_use_of_one_connection_is_named(orm_schema: str) -> None:
    conn = await asyncpg.connect(orm_schema)
    try:
        results = await asyncio.gather(
            conn.fetchval("SELECT pg_sleep(0.05)"),
            conn.fetchval("SELECT 1"),
            return_exceptions=True,
        )
    finally:
        await conn.close()
    assert isinstance(results[1], asyncpg.InterfaceError)
    err = translate(results[1])
    # The connection is busy, not broken: a 503 the client may retry (issue 13).
    assert type(err) is DatabaseUnavailable
    assert err.message == "数据库连接正忙, 请稍后重试"


async def test_a_command_timeout_is_a_timeout_error(orm_schema: str) -> None:
    conn = await asyncpg.connect(orm_schema)
    try:
        with pytest.raises(asyncio.TimeoutError) as caught:
            await conn.fetchval("SELECT pg_sleep(5)", timeout=0.05)
    finally:
        await conn.close()
    err = translate(caught.value)
    assert isinstance(err, AppTimeoutError)
    assert err.message == "数据库操作超时"


async def test_sqlstate_walks_the_cause_chain(orm_schema: str) -> None:
    raw = await _raw_error(orm_schema, _raise_sql("LU402"))
    assert sqlstate(raw) == "LU402"
    translated = await _raised(_raise_sql("LU402"))
    outer = RuntimeError("wrapped twice")
    outer.__cause__ = translated
    assert sqlstate(outer) == "LU402"
    raw.__cause__ = ValueError("below the state")  # the walk stops at the first state
    chained = RuntimeError("wrapped")
    chained.__cause__ = raw
    assert sqlstate(chained) == "LU402"
    assert sqlstate(ValueError("no state")) is None

    class OddState(Exception):
        sqlstate = 402

    assert sqlstate(OddState()) is None


async def test_is_retryable_for_raw_driver_errors(orm_schema: str) -> None:
    for state in ("40001", "40P01", "55P03"):
        assert is_retryable(await _raw_error(orm_schema, _raise_sql(state)))
    assert not is_retryable(await _raw_error(orm_schema, _raise_sql("23505")))
    assert not is_retryable(Conflict("not retryable"))
    assert not is_retryable(ValueError("no sqlstate at all"))
    assert is_retryable(Conflict("retryable", retryable=True))


def test_unavailable_keeps_a_more_precise_unavailable_error() -> None:
    closed = PoolClosed()
    assert unavailable(closed) is closed


async def test_failure_calls_only_a_lost_write_outside_a_transaction_uncertain() -> None:
    lost = ConnectionResetError("lost")
    assert isinstance(failure(lost, "INSERT INTO t VALUES (1)", False), CommitUncertain)
    inside = failure(lost, "INSERT INTO t VALUES (1)", True)
    assert type(inside) is DatabaseUnavailable
    assert type(failure(lost, "SELECT 1", False)) is DatabaseUnavailable


# -- _exec.py: the executor ------------------------------------------------------------


async def test_execute_returns_the_row_count_of_the_status_tag() -> None:
    inserted = await Db.execute("INSERT INTO orm.counters (id, n) VALUES (1, 0), (2, 0)")
    assert inserted == 2  # "INSERT 0 2": the last word, not "0 2"
    assert await Db.execute("DO $$ BEGIN END $$") == 0  # "DO": one word, no count
    assert rowcount(None) == 0
    assert rowcount("") == 0


async def test_an_error_at_commit_is_translated() -> None:
    await Db.execute("CREATE TABLE orm.mut_deferred (id int UNIQUE DEFERRABLE INITIALLY DEFERRED)")
    try:
        with pytest.raises(DuplicateError):
            async with transaction():
                # A deferred constraint is checked at COMMIT: the error comes from guard().
                await Db.execute("INSERT INTO orm.mut_deferred VALUES (1), (1)")
    finally:
        await Db.execute("DROP TABLE orm.mut_deferred")


async def test_an_error_inside_a_transaction_is_translated_watched_or_not() -> None:
    await Db.execute("INSERT INTO orm.counters (id, n) VALUES (1, 0)")
    duplicate = "INSERT INTO orm.counters (id, n) VALUES (1, 0)"
    with pytest.raises(DuplicateError):
        async with transaction():
            await Db.execute(duplicate)
    remove = on_query(lambda event: None)  # watched: the executor's slow path
    try:
        with pytest.raises(DuplicateError):
            async with transaction():
                await Db.execute(duplicate)
        with pytest.raises(DuplicateError):
            await Db.execute(duplicate)
    finally:
        remove()


async def test_copy_is_reported_with_its_table_and_forwards_options() -> None:
    events: list[tuple[str, str]] = []
    remove = on_query(mine(lambda event: events.append((event.sql, event.source))))
    try:
        async with luser_db.connection() as conn:
            status = await conn.copy_records_to_table(
                "counters", records=[(1, 1), (2, 5)], schema_name="orm", where="n > 2"
            )
        copied = await Db.copy_records("orm.counters", [(3, 7)])
    finally:
        remove()
    assert (status, copied) == ("COPY 1", 1)
    assert events == [("COPY orm.counters", "default"), ("COPY orm.counters", "default")]
    assert await Db.query_int("SELECT sum(n) FROM orm.counters") == 12


async def test_raw_statements_that_set_session_state_are_reset(own_pool: str) -> None:
    luser_db.init(own_pool, min_size=1, max_size=1)  # one connection: every call reuses it
    set_name = "SELECT set_config('application_name', 'mutated', false)"
    for call in (Db.find, Db.find_first, Db.query_value, Db.execute):
        await call(set_name)
        assert await Db.query_str("SHOW application_name") != "mutated", call.__name__
    await Db.batch("SELECT set_config('application_name', ?, false)", [("mutated",)])
    assert await Db.query_str("SHOW application_name") != "mutated"

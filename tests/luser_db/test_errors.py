"""SQLSTATE → luser_common mapping, against a real server; messages never carry SQL or values."""

from __future__ import annotations

import builtins

import asyncpg
import pytest

from luser_common import (
    AppError,
    Conflict,
    DatabaseError,
    DatabaseUnavailable,
    DuplicateError,
    TimeoutError,
    ValidationError,
)
from luser_db import Db
from luser_db.errors import is_retryable, translate, unavailable

pytestmark = pytest.mark.usefixtures("clean_tables")

SECRET = "s3cr3t-value"


def _assert_clean(err: AppError, *fragments: str) -> None:
    text = err.message + repr(err.details)
    for fragment in (SECRET, "insert", "INSERT", "select", "orm.", *fragments):
        assert fragment not in text
    assert isinstance(err.__cause__, BaseException)


async def _raise_state(state: str) -> AppError:
    with pytest.raises(AppError) as info:
        await Db.execute(
            f"DO $$ BEGIN RAISE EXCEPTION '{SECRET}' USING ERRCODE = '{state}'; END $$"
        )
    return info.value


async def test_unique_violation_is_duplicate_naming_constraint() -> None:
    await Db.execute("insert into orm.users(name, email) values (?, ?)", "a", SECRET)
    with pytest.raises(DuplicateError) as info:
        await Db.execute("insert into orm.users(name, email) values (?, ?)", "b", SECRET)
    err = info.value
    assert err.status_code == 409 and err.code == "DUPLICATE"
    assert err.details == {"constraint": "users_email_key"}
    assert err.field == "email"
    assert "users_email_key" in err.message
    assert isinstance(err.__cause__, asyncpg.UniqueViolationError)
    _assert_clean(err)


async def test_not_null_names_the_column() -> None:
    with pytest.raises(ValidationError) as info:
        await Db.execute("insert into orm.users(name, email) values (null, ?)", SECRET)
    assert info.value.field == "name" and "name" in info.value.message
    _assert_clean(info.value)


async def test_check_violation_names_the_column() -> None:
    with pytest.raises(ValidationError) as info:
        await Db.execute("insert into orm.users(name, email, age) values ('a', ?, -1)", SECRET)
    assert info.value.field == "age"
    assert info.value.details == {"constraint": "users_age_check"}
    _assert_clean(info.value)


async def test_foreign_key_is_conflict() -> None:
    with pytest.raises(Conflict) as info:
        await Db.execute("insert into orm.videos(user_id, title) values (?, ?)", 424242, SECRET)
    assert type(info.value) is Conflict and not info.value.retryable
    assert info.value.details == {"constraint": "videos_user_fk"}
    _assert_clean(info.value, "424242")


async def test_restrict_violation_is_conflict() -> None:
    err = await _raise_state("23001")
    assert type(err) is Conflict and not err.retryable
    _assert_clean(err)


@pytest.mark.parametrize("state", ["40001", "40P01", "55P03"])
async def test_serialization_deadlock_lock_timeout_are_retryable_conflicts(state: str) -> None:
    err = await _raise_state(state)
    assert type(err) is Conflict and err.retryable and is_retryable(err)
    _assert_clean(err)


@pytest.mark.parametrize("state", ["22012", "22P02", "22001"])
async def test_data_exceptions_are_validation_errors(state: str) -> None:
    err = await _raise_state(state)
    assert isinstance(err, ValidationError) and err.status_code == 422
    _assert_clean(err)


async def test_real_data_errors() -> None:
    with pytest.raises(ValidationError):
        await Db.query_value("select 1 / 0")
    with pytest.raises(ValidationError) as info:
        await Db.query_value("select ?::int + 1", SECRET)  # client-side encoding refuses it
    _assert_clean(info.value)


@pytest.mark.parametrize("state", ["08006", "53300", "57P01", "57P03", "28P01", "3D000"])
async def test_unavailable_states_are_503(state: str) -> None:
    err = await _raise_state(state)
    assert isinstance(err, DatabaseUnavailable) and err.status_code == 503
    _assert_clean(err)


async def test_query_canceled_is_timeout() -> None:
    err = await _raise_state("57014")
    assert isinstance(err, TimeoutError) and err.status_code == 504


async def test_statement_timeout_is_timeout() -> None:
    from luser_db import transaction

    with pytest.raises(TimeoutError):
        async with transaction():
            await Db.execute("set local statement_timeout = 50")
            await Db.execute("select pg_sleep(2)")


async def test_programming_errors_are_500_without_sql() -> None:
    with pytest.raises(DatabaseError) as info:
        await Db.execute(f"selec '{SECRET}'")
    err = info.value
    assert err.status_code == 500 and not isinstance(err, DatabaseUnavailable)
    assert err.details == {"sqlstate": "42601"}
    _assert_clean(err)
    with pytest.raises(DatabaseError):
        await Db.find("select no_such_column from orm.users")


def test_translate_non_postgres_errors() -> None:
    assert isinstance(translate(ConnectionRefusedError()), DatabaseUnavailable)
    assert isinstance(translate(asyncpg.InterfaceError("pool is closed")), DatabaseUnavailable)
    assert isinstance(translate(builtins.TimeoutError()), TimeoutError)
    assert isinstance(unavailable(builtins.TimeoutError()), DatabaseUnavailable)
    mine = ValidationError("x")
    assert translate(mine) is mine

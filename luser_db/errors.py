"""asyncpg / PostgreSQL errors → luser_common errors, in this one place.

Mapped by SQLSTATE (never by message text, which is localised and may quote
values). Messages name constraints and columns only: no SQL text and no
parameter values ever reach them. Callers ``raise translate(exc) from exc``.

    23505 unique_violation            → DuplicateError (409), details.constraint
    23502 not_null_violation          → ValidationError, field = column
    23514 check_violation             → ValidationError, field = column or constraint
    22xxx data exceptions             → ValidationError
    23503 foreign_key_violation       → Conflict
    23001 restrict_violation          → Conflict  (ON DELETE/UPDATE RESTRICT)
    23P01 exclusion_violation         → Conflict
    40001 / 40P01 serialization, deadlock, 55P03 lock_not_available → Conflict(retryable)
    57014 query_canceled, command_timeout → TimeoutError (504)
    25006 read_only_sql_transaction   → ReadOnlyError (503, READ_ONLY): a replica or
                                        default_transaction_read_only
    08xxx, 53xxx, 57P0x, 28xxx, 3D000, closed pool, OSError, acquire timeout (unavailable()),
    "another operation is in progress"  → DatabaseUnavailable (503)
    anything else                     → DatabaseError (500)

:func:`failure` is what the executor calls: it adds the one case ``translate``
cannot see from the exception alone. A connection lost while a statement that may
write ran outside a transaction, or during COMMIT, leaves its outcome unknown:
that is :class:`CommitUncertain`, never retried blindly (see ``retry``).
"""

from __future__ import annotations

import asyncio
import re
from functools import lru_cache
from typing import Any

import asyncpg

from luser_common import (
    AppError,
    Conflict,
    DatabaseError,
    DatabaseUnavailable,
    DuplicateError,
    InternalServerError,
    TimeoutError,
    ValidationError,
)

__all__ = [
    "DB_ERRORS",
    "CommitUncertain",
    "PoolClosed",
    "ReadOnlyError",
    "SharedConnectionError",
    "failure",
    "is_retryable",
    "may_write",
    "sqlstate",
    "translate",
    "unavailable",
]


class SharedConnectionError(InternalServerError):
    """Another task tried to use a transaction's connection."""

    code = "TRANSACTION_SHARED"
    default_message = "事务连接不能被其他并发任务共享: 请在事务外创建任务, 或在任务内开启自己的事务"


class CommitUncertain(DatabaseUnavailable):
    """The connection was lost while a write or COMMIT was in flight: it may have committed.

    Not retryable by default: only the caller knows whether running the work again
    is safe (an idempotency key, a conditional write). ``retry(..., idempotent=True)``
    says it is.
    """

    code = "COMMIT_UNCERTAIN"
    default_message = "数据库连接在提交时中断, 无法确认操作是否已生效, 请查询结果后再决定是否重试"
    retryable = False


class ReadOnlyError(DatabaseUnavailable):
    """A write reached a read-only server (a standby, or default_transaction_read_only)."""

    code = "READ_ONLY"
    default_message = "数据库当前只读, 暂时无法写入"
    retryable = False


class PoolClosed(DatabaseUnavailable):
    """The pool was closed (shutdown); nothing was sent."""

    code = "DATABASE_CLOSED"
    default_message = "数据库连接池已关闭"
    retryable = False


# Everything the executor catches and hands to translate().
DB_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    asyncio.TimeoutError,
)

_KEY_COLUMNS = re.compile(r"^Key \(([^)]*)\)=")
_UNAVAILABLE_PREFIXES = ("08", "53", "57P", "28", "3D")


def _columns_from_detail(detail: str | None) -> str | None:
    # "Key (email)=(...) already exists." -> "email"; the value part is dropped on purpose.
    match = _KEY_COLUMNS.match(detail or "")
    return match.group(1) if match else None


def _unique(exc: Any) -> AppError:
    constraint = exc.constraint_name or ""
    column = _columns_from_detail(exc.detail)
    what = column or constraint or "数据"
    details = {"constraint": constraint} if constraint else None
    return DuplicateError(
        f"{what} 已存在 (违反唯一约束 {constraint})", field=column, details=details
    )


def _not_null(exc: Any) -> AppError:
    column = exc.column_name or "?"
    return ValidationError(f"{column} 不能为空", field=column)


def _check_column(exc: Any) -> str | None:
    # PostgreSQL names an unnamed column check "<table>_<column>_check"; recover the column.
    constraint, table = exc.constraint_name or "", exc.table_name or ""
    prefix = f"{table}_"
    if table and constraint.startswith(prefix) and constraint.endswith("_check"):
        return constraint[len(prefix) : -len("_check")] or None
    return None


def _check(exc: Any) -> AppError:
    name = exc.column_name or _check_column(exc) or exc.constraint_name or "?"
    return ValidationError(
        f"{name} 的值不符合检查约束 {exc.constraint_name or ''}".rstrip(),
        field=name,
        details={"constraint": exc.constraint_name} if exc.constraint_name else None,
    )


def _foreign_key(exc: Any) -> AppError:
    constraint = exc.constraint_name or ""
    return Conflict(
        f"关联数据不存在或仍被引用 (外键约束 {constraint})",
        field=_columns_from_detail(exc.detail),
        details={"constraint": constraint} if constraint else None,
    )


def _retryable(exc: Any) -> AppError:
    return Conflict("并发冲突, 请重试", retryable=True, details={"sqlstate": exc.sqlstate})


_BY_SQLSTATE = {
    "23505": _unique,
    "23502": _not_null,
    "23514": _check,
    "23503": _foreign_key,
    "23001": _foreign_key,  # ON DELETE RESTRICT: the row is still referenced
    "23P01": lambda exc: Conflict(f"数据冲突 (排他约束 {exc.constraint_name or ''})"),
    "40001": _retryable,
    "40P01": _retryable,
    "55P03": _retryable,
    "57014": lambda exc: TimeoutError("数据库操作超时"),
    "25006": lambda exc: ReadOnlyError(),
}


def _from_postgres(exc: asyncpg.PostgresError) -> AppError:
    state: str = getattr(exc, "sqlstate", None) or ""
    handler = _BY_SQLSTATE.get(state)
    if handler is not None:
        return handler(exc)
    if state.startswith("22"):
        column = getattr(exc, "column_name", None)
        return ValidationError("数据格式或取值不合法", field=column, details={"sqlstate": state})
    if state.startswith(_UNAVAILABLE_PREFIXES):
        return DatabaseUnavailable()
    return DatabaseError(details={"sqlstate": state} if state else None)


def translate(exc: BaseException) -> AppError:
    """The luser_common error for ``exc``; the caller chains it with ``from exc``."""
    if isinstance(exc, AppError):
        return exc
    if isinstance(exc, asyncpg.PostgresError):
        return _from_postgres(exc)
    if isinstance(exc, asyncpg.InterfaceError):
        if isinstance(exc, asyncpg.exceptions.InterfaceError) and "another operation" in str(exc):
            return DatabaseUnavailable("数据库连接正忙, 请稍后重试")  # e.g. after killed backends
        return DatabaseUnavailable()
    if isinstance(exc, asyncio.TimeoutError):
        return TimeoutError("数据库操作超时")  # command_timeout; acquire uses unavailable()
    if isinstance(exc, OSError):
        return DatabaseUnavailable()
    return DatabaseError()


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE behind a (translated) error, e.g. a custom ``RAISE ... USING
    ERRCODE = 'LU402'`` from a function: lets callers branch without asyncpg."""
    state = getattr(exc, "sqlstate", None)
    cause = exc.__cause__
    while state is None and cause is not None:
        state = getattr(cause, "sqlstate", None)
        cause = cause.__cause__
    return state if isinstance(state, str) else None


def unavailable(exc: BaseException) -> AppError:
    """The error for a failure to get a connection (pool timeout, refused, closed)."""
    if isinstance(exc, asyncio.TimeoutError):
        return DatabaseUnavailable("获取数据库连接超时, 请稍后重试")
    mapped = translate(exc)
    if isinstance(mapped, DatabaseUnavailable):
        return mapped
    return DatabaseUnavailable()


def is_retryable(exc: BaseException) -> bool:
    """True when running the same work again may succeed and cannot apply it twice.

    Serialization failure, deadlock, lock timeout (mapped or raw), and a database that
    could not be reached or was lost before anything committed (DatabaseUnavailable
    and its retryable kinds). Never CommitUncertain, ReadOnlyError or PoolClosed.
    """
    if isinstance(exc, AppError):
        return bool(exc.retryable) and isinstance(exc, Conflict | DatabaseUnavailable)
    return getattr(exc, "sqlstate", None) in ("40001", "40P01", "55P03")


# Lost mid-operation (the request may have reached the server); an InterfaceError
# "connection is closed" is raised before anything is sent, so it is not here.
_LOST_IN_FLIGHT: tuple[type[BaseException], ...] = (
    asyncpg.ConnectionDoesNotExistError,
    OSError,
)
_READ_HEADS = ("select", "show", "values", "table", "explain", "fetch", "begin", "rollback")
_WRITES = re.compile(r"\b(insert|update|delete|merge|nextval|setval|pg_notify)\b")


@lru_cache(maxsize=4096)
def may_write(sql: str) -> bool:
    """Whether ``sql`` can change data when run on its own (conservative: unsure → True)."""
    text = sql.lstrip(" \t\r\n(").lower()
    if not text.startswith(_READ_HEADS):
        return True
    return text.startswith("select") and _WRITES.search(text) is not None


def failure(exc: BaseException, sql: str, in_transaction: bool) -> AppError:
    """The luser error for ``exc`` raised while ``sql`` ran (the executor's one mapping).

    ``in_transaction``: the statement ran inside an open transaction, so a lost
    connection rolled it back for certain. COMMIT passes False.
    """
    if not in_transaction and isinstance(exc, _LOST_IN_FLIGHT) and may_write(sql):
        return CommitUncertain()
    return translate(exc)

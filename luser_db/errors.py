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
    08xxx, 53xxx, 57P0x, 28xxx, 3D000, closed pool, OSError, acquire timeout (unavailable()),
    "another operation is in progress"  → DatabaseUnavailable (503)
    anything else                     → DatabaseError (500)
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import asyncpg

from luser_common import (
    AppError,
    Conflict,
    DatabaseError,
    DatabaseUnavailable,
    DuplicateError,
    TimeoutError,
    ValidationError,
)

__all__ = ["DB_ERRORS", "is_retryable", "translate", "unavailable"]

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
    if isinstance(exc, asyncpg.DataError):
        # Client-side encoding failure; its text quotes the offending value, so drop it.
        return ValidationError("参数类型与数据库列类型不匹配")
    if isinstance(exc, asyncpg.InterfaceError):
        if isinstance(exc, asyncpg.exceptions.InterfaceError) and "another operation" in str(exc):
            return DatabaseUnavailable("数据库连接正忙, 请稍后重试")  # e.g. after killed backends
        return DatabaseUnavailable()
    if isinstance(exc, asyncio.TimeoutError):
        return TimeoutError("数据库操作超时")  # command_timeout; acquire uses unavailable()
    if isinstance(exc, OSError):
        return DatabaseUnavailable()
    return DatabaseError()


def unavailable(exc: BaseException) -> AppError:
    """The error for a failure to get a connection (pool timeout, refused, closed)."""
    if isinstance(exc, asyncio.TimeoutError):
        return DatabaseUnavailable("获取数据库连接超时, 请稍后重试")
    mapped = translate(exc)
    if isinstance(mapped, DatabaseUnavailable):
        return mapped
    return DatabaseUnavailable()


def is_retryable(exc: BaseException) -> bool:
    """True for a serialization failure, deadlock or lock timeout (mapped or raw)."""
    if isinstance(exc, AppError):
        return bool(exc.retryable) and isinstance(exc, Conflict)
    return getattr(exc, "sqlstate", None) in ("40001", "40P01", "55P03")

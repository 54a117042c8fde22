"""asyncpg / OS errors met while migrating, as luser_common errors with Chinese messages."""

from __future__ import annotations

from urllib.parse import urlsplit

import asyncpg

from luser_common import AppError, ConfigError, DatabaseError, DatabaseUnavailable, TimeoutError

__all__ = ["connect_error", "safe_url", "statement_error"]


def safe_url(url: str) -> str:
    """``url`` without the password, fit for an error message."""
    parts = urlsplit(url)
    host = parts.hostname or parts.query or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.username or ''}@{host}{port}{parts.path}"


def connect_error(exc: BaseException, url: str) -> AppError:
    where = safe_url(url)
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return ConfigError(f"数据库不存在: {where}", field="database.url")
    if isinstance(
        exc, (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)
    ):
        return ConfigError(f"数据库认证失败: {where}", field="database.url")
    if isinstance(exc, asyncpg.PostgresError):
        return DatabaseError(f"连接数据库失败: {where}: {exc}")
    return DatabaseUnavailable(f"无法连接数据库: {where} ({type(exc).__name__})")


def statement_error(
    exc: BaseException,
    label: str,
    sql: str = "",
    *,
    line_offset: int = 0,
    limits: tuple[float, float] = (0, 0),
) -> AppError:
    """The error of running migration ``label``; ``sql`` locates a syntax error's line.

    ``limits`` is ``(lock_timeout, statement_timeout)`` in seconds, for the message.
    """
    lock_timeout, statement_timeout = limits
    if isinstance(exc, asyncpg.LockNotAvailableError):
        return TimeoutError(
            f"迁移 {label} 等待表锁超过 {lock_timeout:g} 秒 (lock_timeout): "
            "有事务占用相关表, 请稍后重试"
        )
    if isinstance(exc, asyncpg.QueryCanceledError):
        return TimeoutError(
            f"迁移 {label} 执行超过 {statement_timeout:g} 秒 (statement_timeout), 已取消"
        )
    if isinstance(exc, asyncpg.PostgresError):
        where = _line_of(exc, sql, line_offset)
        return DatabaseError(f"迁移 {label} 执行失败{where}: {exc}")
    if isinstance(exc, (OSError, asyncpg.InterfaceError)):
        return DatabaseUnavailable(f"迁移 {label} 执行时数据库连接中断: {type(exc).__name__}")
    return AppError.from_exception(exc)


def _line_of(exc: asyncpg.PostgresError, sql: str, offset: int) -> str:
    position = getattr(exc, "position", None)
    if not position or not sql:
        return ""
    try:
        index = int(position) - 1
    except ValueError:
        return ""
    return f" (第 {sql.count(chr(10), 0, index) + 1 + offset} 行)"

"""Who watches statements: ``on_query`` listeners, the ``luser_db.sql`` logger, slow queries.

The executor asks :data:`watch` (one attribute) and :func:`sql_log_enabled` (the
logger's cached level check) before timing anything, so with nobody watching a
statement pays for two tests. ``luser_db.sql`` logs every statement at DEBUG with
its duration, row count, source and parameter count; parameter values appear only
with ``log_parameters`` on. Statements slower than ``database.slow_query_ms`` are
logged at WARNING with the caller's file and line, whatever the logger's level.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from time import perf_counter
from typing import Any

from luser_common import AppError

__all__ = [
    "QueryEvent",
    "clock",
    "configure_sql_log",
    "on_query",
    "report",
    "sql_log_enabled",
    "sql_log_maybe_enabled",
    "statement_kind",
    "watch",
]

sql_log = logging.getLogger("luser_db.sql")
clock = perf_counter

# Longest parameter value shown with log_parameters on; longer ones are cut.
_MAX_VALUE_CHARS = 200


@dataclass(frozen=True, slots=True)
class QueryEvent:
    """One statement (or driver step such as COMMIT or a cursor FETCH) that ran.

    ``kind`` is the statement's leading keyword in lower case (``select``,
    ``insert``, ``with``, ``copy``, ``commit``, ``fetch`` ...); ``rows`` is the
    number of rows returned or affected; ``error`` the luser error it raised.
    """

    sql: str
    kind: str
    source: str
    duration: float
    rows: int
    param_count: int
    error: AppError | None


class _Watch:
    __slots__ = ("active", "callbacks", "explicit", "log_parameters", "slow")

    def __init__(self) -> None:
        self.callbacks: list[Callable[[QueryEvent], Any]] = []
        self.slow: float | None = None  # seconds
        self.log_parameters = False
        self.explicit = False
        self.active = False

    def refresh(self) -> None:
        self.active = bool(self.callbacks) or self.slow is not None


watch = _Watch()


# Whether luser_db.sql logs at DEBUG: the logger's own cached check, bound once (a
# partial, not a def: the executor asks on every statement).
sql_log_enabled: Callable[[], bool] = partial(sql_log.isEnabledFor, logging.DEBUG)


def _maybe_enabled(logger: logging.Logger, level: int) -> Callable[[], bool]:
    """False only when ``logger`` already answered that ``level`` is off; True when it
    may be on (not asked since the last change: ask :func:`sql_log_enabled`).

    isEnabledFor is a Python frame (about 15 bytecodes) around a lookup in the logger's
    ``_cache`` of answers, which logging empties in place on every level change and on
    ``logging.disable``. Reading that dict from C costs no bytecode; the executor's hot
    paths use it to pick their fast path, and the slow path asks the real question (and
    fills the cache), so a stale or missing answer only costs time, never a log line."""
    answers = getattr(logger, "_cache", None)
    if not isinstance(answers, dict):  # another logging implementation: always ask
        return lambda: True
    return partial(answers.get, level, True)  # type: ignore[return-value]  # bool values


# The executor's fast-path test: ``not sql_log_maybe_enabled()`` means DEBUG is off.
sql_log_maybe_enabled: Callable[[], bool] = _maybe_enabled(sql_log, logging.DEBUG)


def on_query(callback: Callable[[QueryEvent], Any]) -> Callable[[], None]:
    """Call ``callback(event)`` after every statement; returns a function that removes it.

    Callbacks run synchronously on the query's path: keep them short (count,
    observe a histogram). One that raises is logged and does not fail the query.
    """
    watch.callbacks.append(callback)
    watch.refresh()

    def remove() -> None:
        if callback in watch.callbacks:
            watch.callbacks.remove(callback)
            watch.refresh()

    return remove


def configure_sql_log(
    *,
    slow_query_ms: float | None = None,
    log_parameters: bool | None = None,
    from_config: bool = False,
) -> None:
    """Set the slow-statement threshold (None or 0: off) and whether values are logged.

    Called by the pool with ``database.slow_query_ms`` / ``database.log_parameters``
    when the primary pool opens (``from_config``); an explicit call wins over those.
    """
    if from_config and watch.explicit:
        return
    watch.explicit = watch.explicit or not from_config
    watch.slow = slow_query_ms / 1000 if slow_query_ms else None
    if log_parameters is not None:
        watch.log_parameters = log_parameters
    watch.refresh()


def reset_sql_log() -> None:
    """Back to defaults: no slow threshold, values masked, config applies again."""
    watch.slow = None
    watch.log_parameters = False
    watch.explicit = False
    watch.refresh()


@lru_cache(maxsize=4096)
def statement_kind(sql: str) -> str:
    head = sql.lstrip(" \t\r\n(").split(None, 1)
    return head[0].lower().rstrip(";") if head else ""


def _rows(result: Any) -> int:
    if result is None:
        return 0
    if isinstance(result, list):
        return len(result)
    if isinstance(result, str):  # a status tag: "UPDATE 3", "COPY 100"
        tail = result.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0
    return 1


def report(
    sql: str,
    args: Sequence[Any],
    source: str,
    started: float,
    result: Any,
    error: AppError | None,
) -> None:
    duration = clock() - started
    rows = 0 if error is not None else _rows(result)
    if watch.callbacks:
        event = QueryEvent(sql, statement_kind(sql), source, duration, rows, len(args), error)
        for callback in tuple(watch.callbacks):
            try:
                callback(event)
            except Exception:  # a metrics hook must never fail the query it observes
                sql_log.exception("luser_db.on_query listener failed")
    if sql_log.isEnabledFor(logging.DEBUG):
        sql_log.debug(
            "%.3f ms rows=%d source=%s params=%d%s%s | %s",
            duration * 1000,
            rows,
            source,
            len(args),
            _values(args),
            f" error={error.code}" if error is not None else "",
            sql,
        )
    if watch.slow is not None and duration >= watch.slow:
        sql_log.warning(
            "slow statement: %.1f ms (threshold %.0f ms) at %s source=%s | %s",
            duration * 1000,
            watch.slow * 1000,
            caller(),
            source,
            sql,
        )


def _values(args: Sequence[Any]) -> str:
    if not args:
        return ""
    if not watch.log_parameters:
        return " values=" + ", ".join("***" for _ in args[:20])
    shown = []
    for value in args[:20]:
        text = repr(value)
        shown.append(text if len(text) <= _MAX_VALUE_CHARS else text[:_MAX_VALUE_CHARS] + "…")
    return " values=" + ", ".join(shown)


_SKIPPED = ("luser_db", "asyncio", "contextlib", "asyncpg")


def caller() -> str:
    """``file:line in function`` of the nearest frame outside luser_db (and asyncio)."""
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not module.startswith(_SKIPPED):
            code = frame.f_code
            return f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"
        frame = frame.f_back  # type: ignore[assignment]
    return "?"

"""Request logs: enqueue on the hot path, write in batches in the background.

``LogWriter.insert_log`` never waits: it puts the row on a bounded asyncio
queue, or counts it as dropped when the queue is full (a full queue means the
database is not keeping up; blocking callers would turn a logging problem into
an outage). A background task drains the queue with binary ``COPY`` in batches
of ``batch_size`` on ``writers`` connections at once: as soon as a batch is
full, and at least every ``flush_interval`` seconds. Transient write failures
are retried with backoff (meanwhile the queue absorbs new rows, then overflows
and counts drops). ``stop()`` writes every queued row before returning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import luser_db
from app.open_api.metrics import OpenApiMetrics
from app.open_api.models import RouterLog
from app.open_api.partitions import ensure_partitions
from app.open_api.rollup import catch_up
from luser_common import AppError, DatabaseUnavailable, ValidationError
from luser_db import Db, QueryBuilder, full_jitter, sqlstate

__all__ = [
    "LOG_COLUMNS",
    "LogFilter",
    "LogRow",
    "LogWriter",
    "daily_usage",
    "log_query",
    "query_logs",
    "usage_query",
    "usage_window",
]

log = logging.getLogger(__name__)


class LogRow(NamedTuple):
    """One router_logs row, in COPY column order."""

    request_id: str
    user_id: int
    token_id: int | None
    path: str
    ability: str
    channel_id: int | None
    failed_channel_ids: list[int] | None
    status_code: int
    error_code: str | None
    latency_ms: int
    units: int
    cost: int
    client_ip: str | None
    created_at: datetime
    # The quota_deductions row this call charged (None for refusals and replays):
    # crash recovery rebuilds the rows of charges that have none (app.open_api.recovery).
    deduction_id: str | None = None


LOG_COLUMNS = list(LogRow._fields)

# Between retries of a batch: full jitter, 50 ms doubling, at most 2 s.
_backoff = full_jitter(base=0.05, cap=2.0)


def _transient(exc: BaseException) -> bool:
    """Worth writing the same batch again: an unreachable database, an exhausted pool, a
    serialization failure or deadlock. Not a COPY whose connection died mid-flight
    (CommitUncertain): its rows may be in, and a duplicate log row double-counts usage;
    crash recovery rebuilds the rows of charged calls that are missing."""
    return isinstance(exc, AppError) and exc.retryable


def _no_partition(exc: BaseException) -> bool:
    # router_logs has no CHECK constraint: a check violation is a row whose month
    # has no partition yet (PostgreSQL: "no partition of relation ... found for row").
    return sqlstate(exc) == "23514"


def _refused_row(exc: BaseException) -> bool:
    # The server refused the data (a constraint, a bad value): one row may be to blame.
    return sqlstate(exc) is not None and not isinstance(exc, DatabaseUnavailable)


async def _copy(rows: Sequence[LogRow]) -> int:
    return await Db.copy_records("router_logs", rows, LOG_COLUMNS)


class LogWriter:
    """Bounded queue + background batch writer for router_logs."""

    def __init__(
        self,
        *,
        queue_size: int = 50_000,
        batch_size: int = 1_000,
        flush_interval: float = 0.5,
        max_retries: int = 8,
        writers: int = 3,
        metrics: OpenApiMetrics | None = None,
    ) -> None:
        self._queue: asyncio.Queue[LogRow] = asyncio.Queue(maxsize=queue_size)
        self._batch_size = batch_size
        self._interval = flush_interval
        self._max_retries = max_retries
        # Concurrent COPY streams: index maintenance is CPU in the server backends.
        self._writers = max(1, writers)
        self._metrics = metrics or OpenApiMetrics()
        self._metrics.track_queue(self._queue.qsize)
        self._wake = asyncio.Event()
        # Held while a batch is out of the queue but not yet written: flush() waits on it.
        self._flushing = asyncio.Lock()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.written = 0
        self.failed = 0

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def insert_log(self, row: LogRow) -> bool:
        """Enqueue ``row``; False (and counted) when the queue is full. Never blocks."""
        try:
            self._queue.put_nowait(row)
        except asyncio.QueueFull:
            self.dropped += 1
            self._metrics.logs_dropped.labels("queue_full").inc()
            return False
        if self._queue.qsize() >= self._batch_size:
            self._wake.set()
        return True

    async def start(self) -> None:
        if self.running:
            return
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="open-api-log-writer")

    async def stop(self) -> None:
        """Flush every queued row, then end the background task."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        else:
            await self.flush()

    async def flush(self) -> None:
        """Write everything queued now (batch by batch), including a batch in flight."""
        async with self._flushing:
            while not self._queue.empty():
                batches = [self._take(self._batch_size) for _ in range(self._writers)]
                await asyncio.gather(*(self._write(b) for b in batches if b))

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            self._metrics.sample_queue()
            try:
                await self.flush()
            except Exception:  # never let the writer die; rows already counted as failed
                log.exception("request-log writer: unexpected error")
        await self.flush()

    def _take(self, limit: int) -> list[LogRow]:
        batch: list[LogRow] = []
        while len(batch) < limit:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return batch

    async def _write(self, batch: list[LogRow], *, first: bool = True) -> None:
        started = time.perf_counter()
        try:
            await luser_db.retry(
                lambda: _copy(batch),
                attempts=self._max_retries + 1,
                retry_on=self._retry_on,
                backoff=_backoff,
            )
        except Exception as exc:
            if first and _no_partition(exc) and await self._add_partitions(batch):
                await self._write(batch, first=False)  # once: the partitions exist now
                return
            if _refused_row(exc) and not _transient(exc):
                # A row the table refuses (a bad value) must not sink its batch-mates.
                await self._write_one_by_one(batch, exc)
            else:
                self._give_up(batch, "write_failed" if _transient(exc) else "error", exc)
            return
        self._metrics.log_flush_seconds.observe(time.perf_counter() - started)
        self._written(len(batch))

    async def _add_partitions(self, batch: list[LogRow]) -> bool:
        """Create the partitions ``batch`` needs; whether they exist now."""
        try:
            created = await ensure_partitions(row.created_at for row in batch)
        except Exception:
            log.exception("request-log: could not create the partitions a batch needs")
            return False
        log.warning("request-log: partitions created on demand: %s", created)
        return True

    def _retry_on(self, exc: BaseException) -> bool:
        if not _transient(exc):
            return False
        self._metrics.log_flush_retries.inc()
        log.warning("request-log batch: transient %r, retrying", exc)
        return True

    async def _write_one_by_one(self, batch: list[LogRow], first: Exception) -> None:
        log.warning("request-log batch refused (%r); writing rows one by one", first)
        for row in batch:
            try:
                await _copy([row])
            except AppError as exc:
                self._give_up([row], "rejected", exc)
            else:
                self._written(1)

    def _written(self, n: int) -> None:
        self.written += n
        self._metrics.logs_written.inc(n)

    def _give_up(self, rows: Sequence[LogRow], reason: str, exc: BaseException) -> None:
        self.failed += len(rows)
        self._metrics.logs_dropped.labels(reason).inc(len(rows))
        log.error("request-log: %d rows not written (%s): %r", len(rows), reason, exc)


# -- reading ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogFilter:
    user_id: int | None = None
    token_id: int | None = None
    ability: str | None = None
    channel_id: int | None = None
    status_code: int | None = None
    since: datetime | None = None
    until: datetime | None = None


# What a listing shows of a row (deduction_id is recovery's bookkeeping).
LISTED = (
    "id",
    "request_id",
    "user_id",
    "token_id",
    "path",
    "ability",
    "channel_id",
    "failed_channel_ids",
    "status_code",
    "error_code",
    "latency_ms",
    "units",
    "cost",
    "client_ip",
    "created_at",
)
_ORDER = ("created_at desc", "id desc")  # newest first; unique (id is one sequence)


def log_query(flt: LogFilter) -> QueryBuilder[RouterLog]:
    """The rows ``flt`` selects, newest first (the ordering keyset pages follow)."""
    query = RouterLog.query().select(*LISTED)
    equal = {
        column: value
        for column in ("user_id", "token_id", "ability", "channel_id", "status_code")
        if (value := getattr(flt, column)) is not None
    }
    if equal:
        query = query.where(**equal)
    if flt.since is not None:
        query = query.where("created_at >= ?", flt.since)
    if flt.until is not None:
        query = query.where("created_at < ?", flt.until)
    return query.order_by(*_ORDER)


async def query_logs(
    flt: LogFilter, *, cursor: str | None = None, limit: int = 50
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of logs and the cursor of the next page (None at the end).

    Keyset pages (``luser_db`` signed cursors): a cursor that was edited, or made for
    another listing, is refused with 422 ``INVALID_CURSOR`` (field ``cursor``)."""
    if not 1 <= limit <= 500:
        raise ValidationError("limit 必须在 1-500 之间", field="limit")
    page = await log_query(flt).keyset(size=limit, after=cursor)
    return [row.to_dict(*LISTED) for row in page.items], page.next_cursor


USAGE_SLOT = timedelta(minutes=15)  # router_log_usage's bucket width (migration 0038)
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # the buckets' origin (date_bin's)


def usage_window(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """``[since, until)`` widened to whole 15-minute slots: what usage reports cover."""
    lo = _EPOCH + (since - _EPOCH) // USAGE_SLOT * USAGE_SLOT
    hi = _EPOCH + -((_EPOCH - until) // USAGE_SLOT) * USAGE_SLOT
    return lo, hi


async def daily_usage(
    user_id: int | None,
    since: datetime,
    until: datetime,
    *,
    token_id: int | None = None,
    tz: str = "UTC",
) -> list[dict[str, Any]]:
    """Per day and ability: calls, successful calls and cost (nano-units).

    Read from the router_log_usage rollup (one row per user, slot, token and
    ability), caught up first (``app.open_api.rollup``): every call logged before the
    report counts, and the cost grows with the days asked for and the calls since the
    rollup job last ran, not with all the calls made.
    The window is widened to whole slots (``usage_window``); every time zone's
    offset is a multiple of 15 minutes, so each slot lies in one local day."""
    await catch_up()  # count the calls logged since the job last ran
    sql, args = usage_query(user_id, since, until, token_id=token_id, tz=tz)
    # The primary: a replica may not have the rows the catch-up just added yet.
    return [dict(r) for r in await Db.use("primary").find(sql, *args)]


def usage_query(
    user_id: int | None,
    since: datetime,
    until: datetime,
    *,
    token_id: int | None = None,
    tz: str = "UTC",
) -> tuple[str, list[Any]]:
    """The SQL and arguments ``daily_usage`` runs (a partner's: one range of the
    rollup's primary key, ``(user_id, bucket, ...)``)."""
    lo, hi = usage_window(since, until)
    args: list[Any] = [lo, hi, tz]
    where = "bucket >= $1 AND bucket < $2"
    if user_id is not None:
        args.append(user_id)
        where += f" AND user_id = ${len(args)}"
    if token_id is not None:
        args.append(token_id)
        where += f" AND token_id = ${len(args)}"
    sql = (
        "SELECT (bucket AT TIME ZONE $3)::date AS day, ability, sum(calls)::bigint AS calls, "
        "sum(succeeded)::bigint AS succeeded, sum(cost)::bigint AS cost "
        f"FROM router_log_usage WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2"
    )
    return sql, args

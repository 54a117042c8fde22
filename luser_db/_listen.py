"""LISTEN/NOTIFY as a library facility.

``listen(channels, callback)`` holds one dedicated connection (outside the pool,
so it neither shrinks the pool nor blocks ``close()``) and keeps it: when the
connection is lost -- the server restarted, a network cut, a killed backend, or a
keepalive probe that got no answer -- it reconnects with backoff, LISTENs again
and then calls ``on_reconnect``. Notifications sent while it was away are lost
(PostgreSQL does not queue them for absent listeners), so ``on_reconnect`` is
where a cache reloads what it may have missed.

The connection goes to the data source's ``direct_url`` when one is set: through a
PgBouncer in transaction mode LISTEN would sit on a shared server connection and
receive nothing, so listening there without ``direct_url`` logs an error. Every lost
connection is logged and counted (:func:`listen_stats`, for metrics).

A callback that raises is logged; the listener keeps running. Async callbacks run
as tasks, so a slow one does not hold up the notifications behind it.

``notify(channel, payload)`` is ``pg_notify`` through the executor: inside a
``transaction()`` it joins it, and PostgreSQL delivers it at COMMIT (never on
rollback). Payloads must be shorter than 8000 bytes (a PostgreSQL limit); longer
ones are refused before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from luser_common import ValidationError

from . import _exec
from ._datasource import PRIMARY
from ._pool import connect_dedicated, settings_of
from .errors import PoolClosed

__all__ = ["ListenStats", "Listener", "Notification", "listen", "listen_stats", "notify"]

log = logging.getLogger("luser_db.listen")

MAX_PAYLOAD_BYTES = 7999  # PostgreSQL: "payload string must be shorter than 8000 bytes"


@dataclass(frozen=True, slots=True)
class Notification:
    channel: str
    payload: str
    pid: int  # the backend that sent it


@dataclass(frozen=True, slots=True)
class ListenStats:
    """Process-wide counts since start: listener connections lost and re-established."""

    lost: int
    reconnected: int


_lost = 0
_reconnected = 0


def listen_stats() -> ListenStats:
    """How many LISTEN connections were lost / re-established in this process."""
    return ListenStats(_lost, _reconnected)


Callback = Callable[[Notification], Any]
Hook = Callable[[], Any]


def _check_channel(channel: Any) -> str:
    if not isinstance(channel, str) or not 0 < len(channel.encode()) <= 63:
        raise ValidationError("频道名必须是 1-63 字节的字符串", field="channel")
    return channel


class Listener:
    """A running ``listen()``: ``close()`` it (or use ``async with``) when done."""

    def __init__(
        self,
        channels: Sequence[str],
        callback: Callback,
        *,
        on_reconnect: Hook | None,
        source: str,
        keepalive: float,
        max_backoff: float,
    ) -> None:
        self.channels = tuple(channels)
        self.source = source
        self.reconnects = 0  # how many times the connection was re-established
        self._callback = callback
        self._on_reconnect = on_reconnect
        self._keepalive = keepalive
        self._max_backoff = max_backoff
        self._conn: Any = None
        self._lost = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    @property
    def pid(self) -> int | None:
        """The server process id of the listening connection (None while away)."""
        return self._conn.get_server_pid() if self.connected else None

    async def start(self) -> None:
        """Connect and LISTEN; errors here (no database) reach the caller."""
        await self._connect()
        self._supervisor = asyncio.create_task(
            self._supervise(), name=f"luser_db.listen {','.join(self.channels)}"
        )

    async def close(self) -> None:
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        await self._drop()
        for task in tuple(self._tasks):
            task.cancel()

    async def __aenter__(self) -> Listener:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _connect(self) -> None:
        conn = await connect_dedicated(self.source)
        self._lost = lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            for channel in self.channels:
                await conn.add_listener(channel, self._dispatch)
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            await asyncio.wait_for(conn.close(), timeout=5)
        except Exception:  # a dead link: cut it without the goodbye
            conn.terminate()

    async def _supervise(self) -> None:
        global _lost, _reconnected
        while True:
            reason: object = "closed by the server"
            try:
                await self._hold()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = repr(exc)
            _lost += 1
            log.warning("LISTEN %s: connection lost (%s)", ",".join(self.channels), reason)
            await self._drop()
            if not await self._reconnect():
                return
            self.reconnects += 1
            _reconnected += 1
            await self._call(self._on_reconnect, "on_reconnect")

    async def _hold(self) -> None:
        """Return when the connection is gone; probe it when it has been quiet."""
        while True:
            try:
                await asyncio.wait_for(self._lost.wait(), self._keepalive)
                return
            except TimeoutError:
                await asyncio.wait_for(self._conn.execute("SELECT 1"), self._keepalive)

    async def _reconnect(self) -> bool:
        delay = 0.05
        while True:
            try:
                await self._connect()
                log.info("LISTEN %s: reconnected", ",".join(self.channels))
                return True
            except PoolClosed:
                log.info("LISTEN %s: database closed, listener stops", ",".join(self.channels))
                return False
            except Exception as exc:
                log.warning("LISTEN %s: reconnect failed (%r)", ",".join(self.channels), exc)
            await asyncio.sleep(delay)
            delay = min(self._max_backoff, delay * 2)

    def _dispatch(self, _conn: Any, pid: int, channel: str, payload: object) -> None:
        note = Notification(channel, str(payload), pid)
        try:
            result = self._callback(note)
        except Exception:
            log.exception("LISTEN %s: callback failed; listener keeps running", channel)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "LISTEN %s: callback failed; listener keeps running",
                ",".join(self.channels),
                exc_info=task.exception(),
            )

    async def _call(self, hook: Hook | None, what: str) -> None:
        if hook is None:
            return
        try:
            result = hook()
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("LISTEN %s: %s failed", ",".join(self.channels), what)


async def listen(
    channels: str | Sequence[str],
    callback: Callback,
    *,
    on_reconnect: Hook | None = None,
    source: str = PRIMARY,
    keepalive: float = 30.0,
    max_backoff: float = 5.0,
) -> Listener:
    """LISTEN on ``channels``; ``callback(Notification)`` (sync or async) for each message.

    Returns once the first LISTEN is in place, so anything committed afterwards is
    announced: LISTEN first, then load the state a cache starts from. ``keepalive``:
    seconds of silence before the connection is probed; ``on_reconnect`` (sync or
    async) runs after every reconnect.
    """
    names = [channels] if isinstance(channels, str) else list(channels)
    if not names:
        raise ValidationError("至少需要一个频道", field="channel")
    for name in names:
        _check_channel(name)
    settings = settings_of(source)
    if settings.pgbouncer and not settings.direct_url:
        log.error(
            "LISTEN %s on data source %s goes through PgBouncer (transaction mode), where"
            " notifications are not delivered: set database.direct_url",
            ",".join(names),
            source,
        )
    if not keepalive > 0:
        raise ValidationError("keepalive 必须是正数 (秒)", field="keepalive")
    listener = Listener(
        names,
        callback,
        on_reconnect=on_reconnect,
        source=source,
        keepalive=keepalive,
        max_backoff=max_backoff,
    )
    await listener.start()
    return listener


async def notify(channel: str, payload: str = "", *, source: str = PRIMARY) -> None:
    """``pg_notify(channel, payload)``; inside ``transaction()`` it is sent at COMMIT."""
    _check_channel(channel)
    if not isinstance(payload, str):
        raise ValidationError("NOTIFY 消息必须是字符串", field="payload")
    size = len(payload.encode())
    if size > MAX_PAYLOAD_BYTES:
        raise ValidationError(
            f"NOTIFY 消息过长: {size} 字节, 上限 {MAX_PAYLOAD_BYTES} 字节",
            field="payload",
            details={"bytes": size, "max_bytes": MAX_PAYLOAD_BYTES},
        )
    await _exec.fetchval("SELECT pg_notify($1, $2)", (channel, payload), source)

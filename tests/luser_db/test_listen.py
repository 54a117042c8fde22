"""listen()/notify(): delivery at commit, a failing callback, oversized payloads, reconnects."""

from __future__ import annotations

import asyncio

import pytest

import luser_db
from luser_common import ValidationError
from luser_db import Db, Notification, listen, notify, transaction

pytestmark = pytest.mark.usefixtures("orm_schema")


async def _next(queue: asyncio.Queue[Notification]) -> Notification:
    return await asyncio.wait_for(queue.get(), timeout=10)


async def test_notify_joins_the_transaction_and_is_sent_at_commit() -> None:
    got: asyncio.Queue[Notification] = asyncio.Queue()
    async with await listen("luser_t1", got.put_nowait):
        with pytest.raises(ZeroDivisionError):
            async with transaction():
                await notify("luser_t1", "rolled back")
                raise ZeroDivisionError
        async with transaction():
            await notify("luser_t1", "committed")
            await Db.execute("select 1")
            assert got.empty()  # nothing is delivered before COMMIT
        await notify("luser_t1", "plain")
        first, second = await _next(got), await _next(got)
    # Delivery follows commit order, so "rolled back" would have come first.
    assert [first.payload, second.payload] == ["committed", "plain"]
    assert first.channel == "luser_t1" and first.pid > 0


async def test_a_callback_that_raises_does_not_stop_the_listener() -> None:
    got: asyncio.Queue[Notification] = asyncio.Queue()

    def callback(note: Notification) -> None:
        if note.payload == "bad":
            raise RuntimeError("callback bug")
        got.put_nowait(note)

    async def slow_async(note: Notification) -> None:
        if note.payload == "bad":
            raise RuntimeError("async callback bug")
        got.put_nowait(note)

    async with await listen(["luser_t2"], callback), await listen("luser_t2", slow_async):
        await notify("luser_t2", "bad")
        await notify("luser_t2", "good")
        assert [(await _next(got)).payload for _ in range(2)] == ["good", "good"]


async def test_oversized_or_bad_payloads_are_refused_before_sending() -> None:
    got: asyncio.Queue[Notification] = asyncio.Queue()
    async with await listen("luser_t3", got.put_nowait):
        async with transaction():
            with pytest.raises(ValidationError) as info:
                await notify("luser_t3", "界" * 2667)  # 8,001 bytes
            assert info.value.details == {"bytes": 8001, "max_bytes": 7999}
            with pytest.raises(ValidationError):
                await notify("", "x")
            with pytest.raises(ValidationError):
                await notify("x" * 64, "x")
            # The transaction was not poisoned: nothing reached the server.
            await notify("luser_t3", "x" * 7999)
        assert (await _next(got)).payload == "x" * 7999


async def test_the_listener_reconnects_and_calls_on_reconnect() -> None:
    got: asyncio.Queue[Notification] = asyncio.Queue()
    reconnected = asyncio.Event()
    listener = await listen("luser_t4", got.put_nowait, on_reconnect=reconnected.set)
    try:
        old_pid = listener.pid
        assert old_pid is not None
        await Db.execute("select pg_terminate_backend(?)", old_pid)
        await asyncio.wait_for(reconnected.wait(), timeout=20)
        assert listener.reconnects == 1 and listener.pid not in (None, old_pid)
        await notify("luser_t4", "after the gap")
        assert (await _next(got)).payload == "after the gap"
    finally:
        await listener.close()
    assert not listener.connected


async def test_listen_refuses_bad_channels() -> None:
    with pytest.raises(ValidationError):
        await listen([], print)
    with pytest.raises(ValidationError):
        await listen("x" * 70, print)
    assert luser_db.Listener  # exported for type annotations

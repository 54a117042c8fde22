"""Lost replies, with a real TCP fault proxy: the server did the work, the client never heard.

A write whose reply is lost may have committed: luser_db says CommitUncertain (never
success, never a plain "unavailable, retry"), and ``retry(idempotent=True)`` re-runs
it safely when the work carries its own key. A lost read is an ordinary, retryable
DatabaseUnavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

import luser_db
from luser_common import DatabaseUnavailable
from luser_db import CommitUncertain, Db, retry, transaction
from luser_db.testing import open_server_stream, server_address, via_local_port

pytestmark = pytest.mark.usefixtures("clean_tables")

READY_FOR_QUERY = b"Z\x00\x00\x00\x05"


class FaultProxy:
    """Forwards TCP to PostgreSQL; once armed with a marker, the first client message
    containing it gets its reply swallowed: the connection is cut when the server's
    ReadyForQuery for it (the statement done, and committed if autocommit) arrives."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.marker: bytes | None = None
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in tuple(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await open_server_stream(self.host, self.port)
        armed = asyncio.Event()

        async def upstream() -> None:
            while data := await client_r.read(65536):
                if self.marker is not None and self.marker in data:
                    self.marker = None
                    armed.set()
                server_w.write(data)
                await server_w.drain()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                if armed.is_set() and READY_FOR_QUERY in data:
                    self.cuts += 1
                    return  # drop the reply and hang up on both sides
                client_w.write(data)
                await client_w.drain()

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        self._tasks.update(tasks)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
                self._tasks.discard(task)
            for writer in (client_w, server_w):
                writer.transport.abort()


@pytest_asyncio.fixture(loop_scope="session")
async def proxy(own_pool: str) -> AsyncIterator[FaultProxy]:
    fault = FaultProxy(*server_address(own_pool))
    port = await fault.start()
    luser_db.init(via_local_port(own_pool, port), min_size=0, max_size=2)
    try:
        yield fault
    finally:
        await luser_db.close()
        with contextlib.suppress(Exception):
            await fault.close()


async def _count(id: int) -> int:
    return await Db.query_int("select count(*) from orm.counters where id = ?", id) or 0


async def test_a_lost_commit_reply_is_commit_uncertain_and_did_commit(proxy: FaultProxy) -> None:
    with pytest.raises(CommitUncertain) as info:
        async with transaction():
            await Db.execute("insert into orm.counters (id, n) values (11, 0)")
            proxy.marker = b"COMMIT"
    assert proxy.cuts == 1
    assert (info.value.status_code, info.value.code) == (503, "COMMIT_UNCERTAIN")
    assert not luser_db.is_retryable(info.value)
    assert await _count(11) == 1  # the server had committed


async def test_a_lost_autocommit_write_is_uncertain_and_idempotent_retry_settles_it(
    proxy: FaultProxy,
) -> None:
    sql = "insert into orm.counters (id, n) values (12, 1) on conflict (id) do nothing"
    proxy.marker = b"values (12, 1)"
    with pytest.raises(CommitUncertain):
        await Db.execute(sql)
    assert await _count(12) == 1
    proxy.marker = b"values (13, 1)"
    attempts = 0

    async def deduct() -> int:
        nonlocal attempts
        attempts += 1
        return await Db.execute(sql.replace("12", "13"))

    # The key (the primary key here, a request id in the open API) makes a rerun safe;
    # the rerun finds the row its lost first attempt wrote.
    assert await retry(deduct, idempotent=True, backoff=lambda attempt: 0) == 0
    assert attempts == 2 and await _count(13) == 1


async def test_a_lost_read_is_plain_unavailable_and_retryable(proxy: FaultProxy) -> None:
    proxy.marker = b"select 4242"
    with pytest.raises(DatabaseUnavailable) as info:
        await Db.query_int("select 4242")
    assert not isinstance(info.value, CommitUncertain)
    assert luser_db.is_retryable(info.value)
    proxy.marker = b"select 4343"
    assert await retry(lambda: Db.query_int("select 4343"), backoff=lambda a: 0) == 4343

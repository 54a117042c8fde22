"""A TCP proxy that counts the protocol messages clients send, by type.

Round trips are what it is for: asyncpg waits for the server after each Sync (``S``,
the end of Bind/Execute) and each Flush (``H``, the end of Parse/Describe when it
prepares a statement), so ``round_trips`` is their sum. Parse (``P``) counts the
statements sent to be prepared.
"""

from __future__ import annotations

import asyncio
import struct
from collections import Counter

_NEGOTIATION_CODES = (80877103, 80877104)  # SSLRequest, GSSENCRequest: before the startup


class WireCounter:
    """Forwards TCP to ``host:port`` both ways and counts the client's messages by type."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.counts: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def round_trips(self) -> int:
        return self.counts["S"] + self.counts["H"]

    async def start(self) -> int:
        """Listen on a free local port; returns it."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in tuple(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(self.host, self.port)

        async def upstream() -> None:
            while True:  # untyped messages: TLS/GSS negotiation, then the startup message
                head = await client_r.readexactly(8)
                length, code = struct.unpack("!ii", head)
                server_w.write(head + await client_r.readexactly(length - 8))
                await server_w.drain()
                if code not in _NEGOTIATION_CODES:
                    break
            while True:
                head = await client_r.readexactly(5)
                (length,) = struct.unpack("!i", head[1:])
                self.counts[head[:1].decode()] += 1
                server_w.write(head + await client_r.readexactly(length - 4))
                await server_w.drain()

        async def downstream() -> None:
            while data := await server_r.read(65536):
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

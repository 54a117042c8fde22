"""A TCP proxy on 127.0.0.1 in front of PostgreSQL that loses the reply of a chosen statement.

It reads the wire protocol just enough to see statements: a frontend Parse whose
SQL contains the armed marker arms the connection; from that statement's Execute
on, the backend's reply is held back, and at its ReadyForQuery (the implicit
transaction has committed by then) both sides are closed and the reply thrown
away. The client sees exactly "the server committed, the reply never came".
Connect with ``ssl=False`` and ``statement_cache_size=0`` so that every statement
is parsed on the wire (a cached prepared statement sends no SQL text).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from luser_db.testing import open_server_stream

__all__ = ["FaultProxy"]


@dataclass
class _Link:
    armed: bool = False  # a matching statement was parsed on this connection
    executing: bool = False  # its Execute went out: the reply is to be lost


class FaultProxy:
    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._marker = b""
        self._pending = 0
        self.cuts = 0
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def lose_reply(self, marker: bytes, times: int = 1) -> None:
        """Lose the reply of the next ``times`` statements whose SQL contains ``marker``."""
        self._marker, self._pending = marker, times

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await open_server_stream(*self._target)
        link = _Link()

        def frontend(kind: int | None, message: bytes) -> bool:
            if kind == ord("P") and self._pending and self._marker in message:
                self._pending -= 1
                link.armed = True
            elif kind == ord("E") and link.armed:
                link.armed, link.executing = False, True
            return True

        def backend(kind: int | None, message: bytes) -> bool:
            if not link.executing:
                return True
            if kind == ord("Z"):  # committed and ready: now lose everything
                self.cuts += 1
                raise ConnectionAbortedError
            return False  # held back, never delivered

        pumps = [
            asyncio.create_task(_pump(client_r, server_w, frontend, startup=True)),
            asyncio.create_task(_pump(server_r, client_w, backend, startup=False)),
        ]
        try:
            # Either side ending (or the cut) ends the link, both directions at once.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for w in (client_w, server_w):
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()


async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    forward: Callable[[int | None, bytes], bool],
    *,
    startup: bool,
) -> None:
    buffer = b""
    while data := await reader.read(65536):
        buffer += data
        out = bytearray()
        while True:
            if startup:  # the startup message has no type byte
                if len(buffer) < 4:
                    break
                kind, size = None, int.from_bytes(buffer[:4], "big")
            else:
                if len(buffer) < 5:
                    break
                kind, size = buffer[0], 1 + int.from_bytes(buffer[1:5], "big")
            if len(buffer) < size:
                break
            message, buffer = buffer[:size], buffer[size:]
            startup = False
            if forward(kind, message):
                out += message
        if out:
            writer.write(bytes(out))
            await writer.drain()

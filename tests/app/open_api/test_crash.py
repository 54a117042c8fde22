"""The service in its own process, stopped the two ways a supervisor stops it.

SIGTERM runs the real app lifespan: the open API stops (flushing every queued log
row) before the pool closes. SIGKILL runs nothing: the queued log rows die with
the process, and crash recovery rebuilds them from ``quota_deductions``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.open_api.manage import TokenSpec, create_token
from app.open_api.recovery import recover

from .conftest import PEPPER

SEARCH = 1_000_000  # catalog.search, seeded by migration 0031: local work, no channel needed
CALLS = 12


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str

    def stop(self, sig: signal.Signals) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            assert server.process.poll() is None, "the service exited during startup"
            try:
                if (await client.get(f"{server.url}/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)  # polling the readiness of another process
    raise AssertionError("the service did not become ready within 60 s")


@pytest.fixture
async def server(migrated_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUSER")}
    env.update(
        {
            "LUSER_ENV": "test",
            "LUSER__DATABASE__URL": migrated_url,
            "LUSER__OPEN_API__TOKEN_PEPPER": PEPPER.decode(),
            # Rows stay queued: nothing reaches the table before the process stops.
            "LUSER__OPEN_API__LOG_FLUSH_INTERVAL_SECONDS": "60",
            "LUSER__OPEN_API__LOG_BATCH_SIZE": "100000",
        }
    )
    # A file, not a pipe: a pipe nobody reads would block the server once full.
    stderr = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    server = Server(process, f"http://127.0.0.1:{port}")
    try:
        await _wait_ready(server)
        yield server
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)
        stderr.close()


async def _partner(conn: asyncpg.Connection, balance: int) -> tuple[int, str]:
    user_id: int = await conn.fetchval(
        "INSERT INTO users (email, password_hash, balance) VALUES ($1, 'x', $2) RETURNING id",
        f"crash{secrets.token_hex(5)}@example.com",
        balance,
    )
    created = await create_token(user_id, TokenSpec(), pepper=PEPPER)
    return user_id, created.key


async def _charged_calls(server: Server, key: str) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        for _ in range(CALLS):
            r = await client.get("/open/v1/videos", headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200, r.text


async def _logged(conn: asyncpg.Connection, user_id: int) -> tuple[int, int]:
    row = await conn.fetchrow(
        "SELECT count(*), coalesce(sum(cost), 0)::bigint FROM router_logs WHERE user_id = $1",
        user_id,
    )
    assert row is not None
    return row[0], row[1]


async def test_sigterm_writes_every_queued_log_row(
    server: Server, conn: asyncpg.Connection
) -> None:
    user_id, key = await _partner(conn, 100 * SEARCH)
    await _charged_calls(server, key)
    assert await _logged(conn, user_id) == (0, 0)  # all still queued in the service
    # uvicorn shuts down gracefully, then re-raises the signal it caught: exit by SIGTERM.
    assert await asyncio.to_thread(server.stop, signal.SIGTERM) in (0, -signal.SIGTERM)
    assert await _logged(conn, user_id) == (CALLS, CALLS * SEARCH)


async def test_sigkill_loses_no_charged_calls_log_row(
    server: Server, conn: asyncpg.Connection
) -> None:
    user_id, key = await _partner(conn, 100 * SEARCH)
    await _charged_calls(server, key)
    await asyncio.to_thread(server.stop, signal.SIGKILL)
    assert await _logged(conn, user_id) == (0, 0)  # the queue died with the process
    # Nothing runs any more: recover at once instead of after the live-node horizon.
    await recover(older_than=timedelta(0))
    assert await _logged(conn, user_id) == (CALLS, CALLS * SEARCH)
    balance = await conn.fetchval("SELECT balance FROM users WHERE id = $1", user_id)
    assert balance == (100 - CALLS) * SEARCH
    rows = await conn.fetch(
        "SELECT l.request_id, l.path, l.ability, l.status_code, l.error_code, l.deduction_id, "
        "d.log_request_id FROM router_logs l JOIN quota_deductions d "
        "ON d.request_id = l.deduction_id WHERE l.user_id = $1",
        user_id,
    )
    assert len(rows) == CALLS
    for row in rows:
        assert row["request_id"] == row["log_request_id"]  # the caller's X-Request-ID
        assert (row["path"], row["ability"]) == ("/open/v1/videos", "catalog.search")
        assert (row["status_code"], row["error_code"]) == (0, "LOG_RECOVERED")
    # A second run finds nothing left to rebuild.
    assert (await recover(older_than=timedelta(0))).logs_rebuilt == 0
    assert await _logged(conn, user_id) == (CALLS, CALLS * SEARCH)

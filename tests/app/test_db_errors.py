"""Database failures reach clients as luser_common errors with the right status.

After killed backends, asyncpg answers a statement on a connection that is still
busy with "cannot perform operation: another operation is in progress" (an
InterfaceError). That is the database connection being unusable for now, a 503
the client may retry, not a 500 bug.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest
from starlette.applications import Starlette

import luser_db
from luser_common import DatabaseUnavailable
from luser_common.http import error_response
from luser_db import Db
from luser_db.errors import translate


async def _wait_until_running(pid: int, deadline_s: float = 10.0) -> None:
    """Poll (with a deadline) until backend ``pid`` is executing its statement."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        state = await Db.find_first(
            "select state from pg_stat_activity where pid = ? and query like '%pg_sleep%'", pid
        )
        if state is not None and state["state"] == "active":
            return
        await asyncio.sleep(0.01)  # poll interval, not synchronisation
    pytest.fail(f"backend {pid} never started its statement")


async def _busy_connection_error() -> asyncpg.InterfaceError:
    async with luser_db.connection() as conn:
        raw = conn.raw  # the driver itself, to see the error before translation
        pid = raw.get_server_pid()
        running = asyncio.create_task(raw.fetchval("select pg_sleep(0.5)"))
        try:
            await _wait_until_running(pid)
            with pytest.raises(asyncpg.InterfaceError) as info:
                await raw.fetchval("select 1")
            # The same collision through luser_db's door arrives already translated.
            with pytest.raises(DatabaseUnavailable):
                await conn.fetchval("select 1")
        finally:
            await running
    assert "another operation is in progress" in str(info.value)
    return info.value


async def test_another_operation_in_progress_is_503(service_app: Starlette) -> None:
    exc = await _busy_connection_error()
    err: Any = translate(exc)
    assert isinstance(err, DatabaseUnavailable)
    assert err.status_code == 503 and err.code == "DATABASE_UNAVAILABLE" and err.retryable
    assert "another operation" not in err.message  # Chinese, and no driver text
    response = error_response(err)
    assert response.status_code == 503

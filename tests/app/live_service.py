"""The service under uvicorn on 127.0.0.1, on its own freshly migrated database.

Tests that must speak real HTTP (keep-alive, schemathesis) run it in a thread with
its own event loop. It gets a database of its own because those tests change
shared state at random (an admin fuzzer disables accounts, deletes plans, adds
channels): nothing they do may leak into the session database other tests use.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

import asyncpg
import httpx
import uvicorn
from starlette.applications import Starlette

from app import create_app
from app.container import LoginLimiter
from app.settings import AppConfig
from luser_db.migrations import Migrator
from luser_db.testing import create_test_database, drop_test_database, server_url

from .conftest import MIGRATIONS, PASSWORD, unique_email


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # running in a thread: no signals
        pass


async def execute(url: str, sql: str, *args: object) -> None:
    """Seed data the API cannot create (an admin account) straight into the database."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


@contextlib.contextmanager
def own_database() -> Iterator[str]:
    """A new, migrated database on the test server; dropped afterwards."""
    base = server_url()
    url = create_test_database(base, prefix="luser_live")
    try:
        asyncio.run(Migrator(url, directory=MIGRATIONS).up())
        yield url
    finally:
        drop_test_database(base, url)


@contextlib.contextmanager
def live_service(config: AppConfig) -> Iterator[tuple[str, Starlette]]:
    """``(base URL, app)`` of the service running under uvicorn until the block ends.

    The caller detaches the process-wide pool first (``detached_pool``): the app's
    lifespan opens its own on the server's event loop.
    """
    app = create_app(config, login_limiter=LoginLimiter(attempts=100_000))
    server = _Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # a poll with a deadline: uvicorn offers no event
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def sign_up(client: httpx.Client, url: str, *, admin: bool = False) -> tuple[int, str]:
    """``(user id, access JWT)`` of a new account; an admin is promoted in the database
    (the API has no way to create one)."""
    account = unique_email()
    r = client.post("/api/auth/register", json={"email": account, "password": PASSWORD})
    assert r.status_code == 201, r.text
    user_id = int(r.json()["data"]["id"])
    if admin:
        asyncio.run(execute(url, "update users set role = 'admin' where id = $1", user_id))
    r = client.post("/api/auth/login", json={"account": account, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return user_id, str(r.json()["data"]["access_token"])

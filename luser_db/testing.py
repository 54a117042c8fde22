"""Pytest plugin: a fresh PostgreSQL database per test session.

The server comes from ``LUSER_TEST_DATABASE_URL`` when set, else from
testcontainers when ``LUSER_TEST_TESTCONTAINERS=1`` (needs Docker), else from the
embedded PostgreSQL wheel. Each session creates its own database and drops it at
the end, so parallel sessions never see each other's rows.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator

import pytest

from .embedded import start_embedded, with_database

__all__ = ["create_test_database", "database_url", "drop_test_database", "server_url"]


def server_url() -> str:
    """URL of the server test databases are created on."""
    explicit = os.environ.get("LUSER_TEST_DATABASE_URL")
    if explicit:
        return explicit
    if os.environ.get("LUSER_TEST_TESTCONTAINERS") == "1":
        return _testcontainers_url()
    return start_embedded(os.environ.get("LUSER_TEST_EMBEDDED_DIR", ".luser/pgdata"))


def _testcontainers_url() -> str:
    from testcontainers.postgres import PostgresContainer

    container = PostgresContainer("postgres:16-alpine", driver=None)
    container.start()
    import atexit

    atexit.register(container.stop)
    return str(container.get_connection_url())


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_test_database(base_url: str, prefix: str = "luser_test") -> str:
    """Create a uniquely named database on ``base_url``'s server; return its URL."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    asyncio.run(_admin(base_url, f'CREATE DATABASE "{name}"'))
    return with_database(base_url, name)


def drop_test_database(base_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[-1].split("?", 1)[0]
    asyncio.run(_admin(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A freshly created, empty database for this test session."""
    base = server_url()
    url = create_test_database(base)
    try:
        yield url
    finally:
        drop_test_database(base, url)

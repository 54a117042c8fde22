"""Fixtures: a migrated database (luser_db initialised on it), a driver pool the tests
use to set up and inspect rows behind the service's back, users and tokens."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import luser_db
from app.open_api.manage import TokenSpec, create_token
from app.open_api.tokens import TokenStore

ROOT = Path(__file__).resolve().parents[3]
PEPPER = b"test-pepper"


@pytest.fixture(scope="session")
async def migrated_url(database_url: str) -> str:
    from luser_db.migrations import Migrator

    await Migrator(
        database_url, directory=ROOT / "app" / "migrations", lock_timeout=10, statement_timeout=0
    ).up()
    return database_url


@pytest.fixture(scope="session")
async def pool(migrated_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(migrated_url, min_size=2, max_size=16)
    assert pool is not None
    luser_db.init(migrated_url)  # the open API runs on luser_db; this pool sets up rows
    try:
        yield pool
    finally:
        try:
            await asyncio.wait_for(pool.close(), 5)
        except TimeoutError:
            pool.terminate()


@pytest.fixture
async def conn(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as c:
        yield c


MakeUser = Callable[..., Awaitable[int]]


@pytest.fixture
def make_user(pool: asyncpg.Pool) -> MakeUser:
    async def make(balance: int = 0, status: str = "active", group: str | None = None) -> int:
        async with pool.acquire() as c:
            user_id: int = await c.fetchval(
                "INSERT INTO users (email, password_hash, status, balance) "
                "VALUES ($1, 'x', $2, $3) RETURNING id",
                f"u{secrets.token_hex(6)}@example.com",
                status,
                balance,
            )
            if group is not None:
                await c.execute(
                    "INSERT INTO group_members (user_id, group_name) VALUES ($1, $2)",
                    user_id,
                    group,
                )
        return user_id

    return make


@pytest.fixture
def store() -> TokenStore:
    return TokenStore(PEPPER, ttl_seconds=3600)


MakeToken = Callable[..., Awaitable[tuple[int, str]]]


@pytest.fixture
def make_token(pool: asyncpg.Pool) -> MakeToken:
    async def make(user_id: int, **spec: Any) -> tuple[int, str]:
        created = await create_token(user_id, TokenSpec(**spec), pepper=PEPPER)
        return created.token["id"], created.key

    return make


# The HTTP service fixtures (module-scoped: one app per test module that uses them).
from .service_env import env, stubs  # noqa: E402, F401

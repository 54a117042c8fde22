"""Packaging tests: child processes, each against its own fresh database."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from luser_db.embedded import with_database


@pytest.fixture
async def fresh_url(database_url: str) -> AsyncIterator[str]:
    name = f"luser_pkg_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(database_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

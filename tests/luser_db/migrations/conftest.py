"""Fixtures for migration tests: an empty database per test and a folder to write files into."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from luser_db.embedded import with_database
from luser_db.migrations import Migrator


@pytest.fixture
async def fresh_url(database_url: str) -> AsyncIterator[str]:
    """A new empty database on the test server; dropped afterwards."""
    name = f"luser_mig_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(database_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def mdir(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    folder.mkdir()
    return folder


@pytest.fixture
def write(mdir: Path) -> Callable[[str, str], Path]:
    def _write(name: str, sql: str) -> Path:
        path = mdir / name
        path.write_text(sql, encoding="utf-8")
        return path

    return _write


@pytest.fixture
def make_migrator(fresh_url: str, mdir: Path) -> Callable[..., Migrator]:
    def _make(**kwargs: object) -> Migrator:
        options: dict = {"directory": mdir, "lock_timeout": 5, "statement_timeout": 0}
        options.update(kwargs)
        return Migrator(fresh_url, **options)

    return _make

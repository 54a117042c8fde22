"""CLI tests run ``luser`` as a subprocess, the way a user does, against a fresh database."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from luser_db.embedded import with_database

LUSER = str(Path(sys.executable).with_name("luser"))


@pytest.fixture
async def fresh_url(database_url: str) -> AsyncIterator[str]:
    name = f"luser_cli_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(database_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project folder (no config/, so schema defaults + environment apply)."""
    (tmp_path / "migrations").mkdir()
    return tmp_path


@pytest.fixture
def cli_env(fresh_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUSER")}
    env.update({"LUSER__DATABASE__URL": fresh_url, "LUSER_ENV": "test", "NO_COLOR": "1"})
    return env


@pytest.fixture
def luser(
    project: Path, cli_env: dict[str, str]
) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LUSER, *args],
            cwd=project,
            env={**cli_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    return run

"""Development seeding and the ``luser user create-admin`` command."""

from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette

from app.cli import main
from app.seed import ADMIN_ACCOUNT, seed_demo_data
from app.settings import AppConfig
from luser_db import Db, transaction

from .conftest import detached_pool, unique_email


class _Rollback(Exception):
    pass


async def test_seed_inserts_demo_data_once(service_app: Starlette) -> None:
    accounts = service_app.state.services.accounts
    with pytest.raises(_Rollback):  # leave the shared test database as it was
        async with transaction():
            await Db.execute("delete from categories")
            assert await seed_demo_data(accounts) is True
            published = await Db.query_int(
                "select count(*) from videos where status = 'published' and deleted_at is null"
                " and media_id like 'demo-media-%'"
            )
            assert published is not None and published >= 20
            role = await Db.query_str(
                "select role from users where lower(email) = ?", ADMIN_ACCOUNT
            )
            assert role == "admin"
            assert await seed_demo_data(accounts) is False
            raise _Rollback


async def test_create_admin_command(
    app_config: AppConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    assert app_config.database.url is not None
    monkeypatch.setenv("LUSER__DATABASE__URL", app_config.database.url.get_secret_value())
    monkeypatch.setenv("LUSER_CONFIG_DIR", str(tmp_path))
    email = unique_email()
    runner = CliRunner()
    async with detached_pool(app_config):  # the command runs its own event loop
        ok = await asyncio.to_thread(
            runner.invoke, main, ["user", "create-admin", email, "--password", "Adm1n-pass-x"]
        )
        weak = await asyncio.to_thread(
            runner.invoke, main, ["user", "create-admin", unique_email(), "--password", "x"]
        )
    assert ok.exit_code == 0, ok.output
    assert weak.exit_code != 0 and "密码" in weak.output
    role = await Db.query_str("select role from users where email = ?", email)
    assert role == "admin"

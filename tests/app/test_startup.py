"""The lifespan against a database without the service's schema: one clear refusal."""

from __future__ import annotations

import secrets

import asyncpg
import pytest

from app import create_app
from app.config_checks import UNMIGRATED
from app.settings import AppConfig
from luser_common import ConfigError
from luser_db.embedded import with_database

from .conftest import detached_pool


async def test_create_app_on_an_unmigrated_database_says_to_migrate(
    app_config: AppConfig, database_url: str
) -> None:
    name = f"luser_unmigrated_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        config = AppConfig.model_validate(
            {"env": "test", "database": {"url": with_database(database_url, name)}}
        )
        app = create_app(config)
        # detached_pool: the refused lifespan must not take the session's pool with it.
        async with detached_pool(app_config):
            with pytest.raises(ConfigError) as info:
                async with app.router.lifespan_context(app):
                    pass
        assert info.value.message == UNMIGRATED
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

"""The app_config table against a real PostgreSQL (fixture ``database_url``)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

import luser_config
from luser_common import ConfigError
from luser_config import ConfigBuilder, KeyRing, Settings, generate_key

WAIT = 30.0


@pytest.fixture
def table() -> str:
    return f"cfg_{secrets.token_hex(4)}"


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(database_url)
    yield c
    await c.close()


def _builder(cfg_dir, database_url: str, table: str) -> ConfigBuilder:  # type: ignore[no-untyped-def]
    return (
        ConfigBuilder().env("test").config_dir(cfg_dir).with_db(True, dsn=database_url, table=table)
    )


async def _put(
    conn: asyncpg.Connection, table: str, key: str, value: object, env: str = "test"
) -> None:
    await conn.execute(
        f"INSERT INTO {table} (env, key, value) VALUES ($1, $2, $3::jsonb) "
        f"ON CONFLICT (env, key) DO UPDATE SET value = excluded.value, "
        f"version = {table}.version + 1, updated_at = now()",
        env,
        key,
        json.dumps(value),
    )


async def test_table_is_created_and_rows_sit_between_files_and_env(  # type: ignore[no-untyped-def]
    cfg_dir, write, database_url, table, conn, monkeypatch
) -> None:
    write("default.toml", '[server]\nport = 1000\nhost = "file"\nworkers = 2\n')
    manager = await _builder(cfg_dir, database_url, table).build()
    assert await conn.fetchval("SELECT count(*) FROM " + table) == 0
    await _put(conn, table, "server.port", 2000)
    await _put(conn, table, "server.host", "db")
    await _put(conn, table, "server.host", "other-env", env="production")
    await _put(conn, table, "database.data_sources", {"replica": {"max_connections": 3}})
    monkeypatch.setenv("LUSER__SERVER__HOST", "env")
    assert await manager.reload() is True
    cfg = manager.get_config()
    assert (cfg.server.port, cfg.server.host, cfg.server.workers) == (2000, "env", 2)
    assert cfg.database.data_sources["replica"].max_connections == 3
    assert manager.source_of("server.port").kind == "db"
    assert manager.source_of("database.data_sources.replica.max_connections").kind == "db"
    columns = {
        r["column_name"]
        for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $1", table
        )
    }
    assert columns >= {"env", "key", "value", "is_encrypted", "version", "updated_at", "updated_by"}


async def test_invalid_db_value_names_the_table(cfg_dir, write, database_url, table, conn) -> None:  # type: ignore[no-untyped-def]
    write("default.toml", "")
    manager = await _builder(cfg_dir, database_url, table).build()
    await _put(conn, table, "server.port", "not a port")
    with pytest.raises(ConfigError) as info:
        await manager.reload()
    assert info.value.details[0]["key"] == "server.port"
    assert table in info.value.details[0]["source"]
    assert manager.get_config().server.port == Settings().server.port


async def test_force_init_syncs_files_into_table(cfg_dir, write, database_url, table, conn) -> None:  # type: ignore[no-untyped-def]
    write(
        "default.toml", '[server]\nport = 1000\n[encryption]\nsensitive_keys = ["extensions.a"]\n'
    )
    await (await _builder(cfg_dir, database_url, table).build()).close()  # creates the table
    await _put(conn, table, "server.port", 5555)
    manager = await _builder(cfg_dir, database_url, table).build()
    assert manager.get_config().server.port == 5555  # without force the database wins
    manager = await _builder(cfg_dir, database_url, table).force_init(True).build()
    assert manager.get_config().server.port == 1000
    rows = {
        r["key"]: json.loads(r["value"])
        for r in await conn.fetch(f"SELECT key, value FROM {table} WHERE env = 'test'")
    }
    assert rows == {"server.port": 1000, "encryption.sensitive_keys": ["extensions.a"]}


async def test_set_persists_encrypts_secrets_and_bumps_version(  # type: ignore[no-untyped-def]
    cfg_dir, write, database_url, table, conn, monkeypatch
) -> None:
    ring = KeyRing.parse(generate_key("a"))
    monkeypatch.setenv("LUSER_ENCRYPTION_KEY", ring.export())
    write("default.toml", "")
    manager = await _builder(cfg_dir, database_url, table).build()
    await manager.set("server.port", 4321)
    await manager.set("server.port", 4322)
    await manager.set("auth.secret", "db-secret")
    rows = {r["key"]: r for r in await conn.fetch(f"SELECT * FROM {table}")}
    assert json.loads(rows["server.port"]["value"]) == 4322 and rows["server.port"]["version"] == 2
    stored = json.loads(rows["auth.secret"]["value"])
    assert stored.startswith("ENC(a:") and rows["auth.secret"]["is_encrypted"]
    assert ring.decrypt(stored, "auth.secret") == "db-secret"
    assert manager.get_config().auth.secret.get_secret_value() == "db-secret"
    # a fresh manager sees the persisted values
    fresh = await _builder(cfg_dir, database_url, table).install(False).build()
    assert fresh.get("server.port") == 4322
    with pytest.raises(ConfigError):
        await manager.set("server.port", 0)
    assert (
        json.loads(await conn.fetchval(f"SELECT value FROM {table} WHERE key = 'server.port'"))
        == 4322
    )


async def test_polling_sees_database_changes(cfg_dir, write, database_url, table, conn) -> None:  # type: ignore[no-untyped-def]
    write("default.toml", "[hot_reload]\ndb_poll_seconds = 0.1\n")
    manager = await _builder(cfg_dir, database_url, table).with_hot_reload(True).build()
    changed = asyncio.Event()
    seen: list[tuple[int, int]] = []

    async def on_change(old: Settings, new: Settings) -> None:
        seen.append((old.server.port, new.server.port))
        changed.set()

    manager.subscribe(on_change)
    try:
        await _put(conn, table, "server.port", 7000)
        await asyncio.wait_for(changed.wait(), WAIT)
        assert seen == [(Settings().server.port, 7000)]
        changed.clear()
        await conn.execute(f"DELETE FROM {table}")
        await asyncio.wait_for(changed.wait(), WAIT)
        assert manager.get_config().server.port == Settings().server.port
    finally:
        await manager.close()


async def test_db_url_comes_from_files_or_env(  # type: ignore[no-untyped-def]
    cfg_dir, write, database_url, table, monkeypatch
) -> None:
    write("default.toml", "")
    with pytest.raises(ConfigError, match=r"database\.url"):
        await ConfigBuilder().env("test").config_dir(cfg_dir).with_db(True).build()
    ring = KeyRing.parse(generate_key("a"))
    monkeypatch.setenv("LUSER_ENCRYPTION_KEY", ring.export())
    monkeypatch.setenv("LUSER__DATABASE__URL", ring.encrypt(database_url, "database.url"))
    manager = await luser_config.init_config("test", cfg_dir, with_db=True)
    assert manager.get_config().database.url.get_secret_value() == database_url  # type: ignore[union-attr]


async def test_unreachable_database_is_a_config_error(cfg_dir, write) -> None:  # type: ignore[no-untyped-def]
    write("default.toml", "")
    builder = (
        ConfigBuilder()
        .env("test")
        .config_dir(cfg_dir)
        .with_db(True, dsn="postgresql://nobody:secretpw@127.0.0.1:1/none")
    )
    with pytest.raises(ConfigError) as info:
        await builder.build()
    assert "secretpw" not in str(info.value)


async def test_force_init_encrypts_plaintext_secrets(  # type: ignore[no-untyped-def]
    cfg_dir, write, database_url, table, conn, monkeypatch
) -> None:
    ring = KeyRing.parse(generate_key("a"))
    monkeypatch.setenv("LUSER_ENCRYPTION_KEY", ring.export())
    write("default.toml", '[auth]\nsecret = "plain-in-file"\n')
    manager = await _builder(cfg_dir, database_url, table).force_init(True).build()
    row = await conn.fetchrow(f"SELECT value, is_encrypted FROM {table} WHERE key = 'auth.secret'")
    assert row["is_encrypted"] and "plain-in-file" not in row["value"]
    assert manager.get_config().auth.secret.get_secret_value() == "plain-in-file"

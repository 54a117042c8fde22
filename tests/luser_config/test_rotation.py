"""Key rotation end to end: files (comments kept) and database rows, nothing lost."""

from __future__ import annotations

import json
import secrets

import asyncpg
import pytest

from luser_common import EncryptionError
from luser_config import ConfigBuilder, KeyRing, generate_key, load_config, rotate_key
from luser_config.sources.database import DatabaseSource

SECRETS = {
    "auth.secret": "jwt-plain",
    "redis.password": "redis-plain",
    "database.url": "postgresql://u:db-plain@127.0.0.1/x",
    "partner.shop.api_key": "0123456789abcdef0123456789abcdef",
    "partner.media.secret_key": "tc-plain",
}


def _default_toml(ring: KeyRing) -> str:
    enc = {k: ring.encrypt(v, k) for k, v in SECRETS.items()}
    return f"""# top comment: keep me
[server]
port = 8000   # inline comment

[database]
url = "{enc["database.url"]}"   # encrypted url

[redis]
password = '{enc["redis.password"]}'

[auth]
# the signing secret
secret = "{enc["auth.secret"]}"

[partner.shop]
api_key = "{enc["partner.shop.api_key"]}"

[partner.media]
secret_key = "{enc["partner.media.secret_key"]}"
"""


def _plain(cfg) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        "auth.secret": cfg.auth.secret.get_secret_value(),
        "redis.password": cfg.redis.password.get_secret_value(),
        "database.url": cfg.database.url.get_secret_value(),
        "partner.shop.api_key": cfg.partner.shop.api_key.get_secret_value(),
        "partner.media.secret_key": cfg.partner.media.secret_key.get_secret_value(),
    }


async def test_rotate_files_and_database_end_to_end(cfg_dir, database_url, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    a, b = KeyRing.parse(generate_key("a")), KeyRing.parse(generate_key("b"))
    (cfg_dir / "default.toml").write_text(_default_toml(a))
    (cfg_dir / "production.toml").write_text(
        f'# prod\n[auth]\nsecret = "{a.encrypt("prod-jwt", "auth.secret")}"\n'
    )
    table = f"cfg_{secrets.token_hex(4)}"
    source = DatabaseSource(database_url, "test", table)
    await source.put("extensions.api_token", a.encrypt("db-token", "extensions.api_token"))
    await source.put(
        "extensions.nested", {"pw": a.encrypt("nested-pw", "extensions.nested.pw"), "n": 1}
    )
    await source.put("server.workers", 3)
    prod = DatabaseSource(database_url, "production", table)
    await prod.put("redis.password", a.encrypt("prod-redis", "redis.password"))
    before = (cfg_dir / "default.toml").read_text()

    report = await rotate_key(cfg_dir, a, b, db=source)
    assert report.files == {str(cfg_dir / "default.toml"): 5, str(cfg_dir / "production.toml"): 1}
    assert report.db_rows == 3 and report.new_kid == "b"

    after = (cfg_dir / "default.toml").read_text()
    assert "ENC(a:" not in after and after.count("ENC(b:") == 5
    for line in (
        "# top comment: keep me",
        "port = 8000   # inline comment",
        "# the signing secret",
        "# encrypted url",
    ):
        assert line in after
    # apart from the tokens the text is byte-identical
    assert [ln.split("ENC(")[0] for ln in before.splitlines()] == [
        ln.split("ENC(")[0] for ln in after.splitlines()
    ]

    # only the new key is needed now: every value decrypts, nothing lost
    monkeypatch.setenv("LUSER_ENCRYPTION_KEY", b.export())
    assert _plain(load_config("test", cfg_dir)) == SECRETS
    assert load_config("production", cfg_dir).auth.secret.get_secret_value() == "prod-jwt"
    manager = (
        await ConfigBuilder()
        .env("test")
        .config_dir(cfg_dir)
        .with_db(True, dsn=database_url, table=table)
        .install(False)
        .build()
    )
    assert manager.get("extensions.api_token") == "db-token"
    assert manager.get("extensions.nested") == {"pw": "nested-pw", "n": 1}
    assert manager.get("server.workers") == 3
    conn = await asyncpg.connect(database_url)
    try:
        prod_value = json.loads(
            await conn.fetchval(f"SELECT value FROM {table} WHERE env = 'production'")
        )
    finally:
        await conn.close()
    assert b.decrypt(prod_value, "redis.password") == "prod-redis"

    # a rerun with the combined ring is harmless
    again = await rotate_key(cfg_dir, b.with_primary(a), b, db=source)
    assert again.total == 9
    assert _plain(load_config("test", cfg_dir)) == SECRETS


async def test_rotation_is_all_or_nothing(cfg_dir) -> None:  # type: ignore[no-untyped-def]
    a, b, stranger = (KeyRing.parse(generate_key(k)) for k in "abz")
    good = cfg_dir / "default.toml"
    good.write_text(f'[auth]\nsecret = "{a.encrypt("x", "auth.secret")}"\n')
    bad = cfg_dir / "test.toml"
    bad.write_text(f'[redis]\npassword = "{stranger.encrypt("y", "redis.password")}"\n')
    before = good.read_text(), bad.read_text()
    with pytest.raises(EncryptionError) as info:
        await rotate_key(cfg_dir, a, b)
    assert info.value.details[0]["key"] == "redis.password"
    assert info.value.details[0]["line"] == 2
    assert (good.read_text(), bad.read_text()) == before


async def test_dry_run_writes_nothing(cfg_dir) -> None:  # type: ignore[no-untyped-def]
    a, b = KeyRing.parse(generate_key("a")), KeyRing.parse(generate_key("b"))
    path = cfg_dir / "default.toml"
    path.write_text(f'[auth]\nsecret = "{a.encrypt("x", "auth.secret")}"\n')
    before = path.read_text()
    report = await rotate_key(cfg_dir, a, b, dry_run=True)
    assert report.total == 1 and path.read_text() == before


async def test_manager_rotate_key_switches_to_combined_ring(cfg_dir, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    a, b = KeyRing.parse(generate_key("a")), KeyRing.parse(generate_key("b"))
    monkeypatch.setenv("LUSER_ENCRYPTION_KEY", a.export())
    (cfg_dir / "default.toml").write_text(_default_toml(a))
    manager = await ConfigBuilder().env("test").config_dir(cfg_dir).build()
    report = await manager.rotate_key(b)
    assert report.total == 5
    assert _plain(manager.get_config()) == SECRETS
    assert "ENC(a:" not in (cfg_dir / "default.toml").read_text()


async def test_database_rotation_is_all_or_nothing(database_url, cfg_dir) -> None:  # type: ignore[no-untyped-def]
    a, b, stranger = (KeyRing.parse(generate_key(k)) for k in "abz")
    table = f"cfg_{secrets.token_hex(4)}"
    source = DatabaseSource(database_url, "test", table)
    await source.put("extensions.good", a.encrypt("fine", "extensions.good"))
    await source.put("extensions.bad", stranger.encrypt("lost?", "extensions.bad"))
    conn = await asyncpg.connect(database_url)
    try:
        query = f"SELECT key, value, version FROM {table} ORDER BY key"
        before = [tuple(r) for r in await conn.fetch(query)]
        with pytest.raises(EncryptionError) as info:
            await source.rotate(a, b)
        assert [d["key"] for d in info.value.details] == ["extensions.bad"]
        # Skipping the undecryptable value would have re-encrypted the good one.
        assert [tuple(r) for r in await conn.fetch(query)] == before
        # Through rotate_key: the files are left alone too.
        path = cfg_dir / "default.toml"
        path.write_text(f'[auth]\nsecret = "{a.encrypt("x", "auth.secret")}"\n')
        text = path.read_text()
        with pytest.raises(EncryptionError):
            await rotate_key(cfg_dir, a, b, db=source)
        assert path.read_text() == text
        assert [tuple(r) for r in await conn.fetch(query)] == before
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.close()


@pytest.mark.parametrize("crash_at", ["fsync", "replace"])
async def test_a_crash_while_writing_leaves_the_old_file_whole(  # type: ignore[no-untyped-def]
    cfg_dir, monkeypatch, crash_at: str
) -> None:
    a, b = KeyRing.parse(generate_key("a")), KeyRing.parse(generate_key("b"))
    path = cfg_dir / "default.toml"
    path.write_text(f'# keep me\n[auth]\nsecret = "{a.encrypt("x", "auth.secret")}"\n')
    before = path.read_bytes()

    def crash(*args: object) -> None:
        raise OSError("simulated crash")

    # Between writing the new text and putting it in place (or while flushing it).
    monkeypatch.setattr(f"luser_config._rotate.os.{crash_at}", crash)
    with pytest.raises(OSError, match="simulated crash"):
        await rotate_key(cfg_dir, a, b)
    assert path.read_bytes() == before
    assert sorted(p.name for p in cfg_dir.iterdir()) == ["default.toml"]  # no temp file left
    monkeypatch.undo()
    await rotate_key(cfg_dir, a, b)  # and a rerun completes
    assert "ENC(b:" in path.read_text() and path.read_text().startswith("# keep me\n")

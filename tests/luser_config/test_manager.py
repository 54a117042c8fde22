"""ConfigBuilder / ConfigManager and the module-level API (no database)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

import luser_config
from luser_common import ConfigError
from luser_config import ConfigBuilder, KeyRing, Settings, generate_key


async def test_build_installs_module_level_config(cfg_dir, write) -> None:  # type: ignore[no-untyped-def]
    write("default.toml", "[server]\nport = 1234\n")
    assert not luser_config.is_initialized()
    manager = await ConfigBuilder().env("test").config_dir(cfg_dir).build()
    assert luser_config.is_initialized()
    assert luser_config.get_config() is manager.get_config()
    assert luser_config.get("server.port") == 1234
    assert manager.get("server.port") == 1234
    assert manager.env == "test"
    await manager.close()


async def test_get_dotted_paths_and_missing_keys(cfg_dir, write) -> None:  # type: ignore[no-untyped-def]
    write(
        "default.toml",
        """
        [auth]
        secret = "s"
        [features]
        beta = true
        [extensions.shop]
        limit = 3
        [my_service]
        name = "x"
    """,
    )
    manager = await ConfigBuilder().env("test").config_dir(cfg_dir).install(False).build()
    assert isinstance(manager.get("auth.secret"), SecretStr)
    assert manager.get("features.beta") is True
    assert manager.get("extensions.shop.limit") == 3
    assert manager.get("my_service.name") == "x"
    assert manager.get("server") == Settings().server
    assert manager.get("nope.nothing", None) is None
    with pytest.raises(ConfigError, match=r"配置项不存在: server\.nope"):
        manager.get("server.nope")
    assert not luser_config.is_initialized()


async def test_set_validates_overrides_and_notifies(cfg_dir, write) -> None:  # type: ignore[no-untyped-def]
    write("default.toml", "[server]\nport = 1000\n")
    manager = await ConfigBuilder().env("test").config_dir(cfg_dir).build()
    seen: list[tuple[int, int]] = []
    async_seen: list[int] = []

    def sync_cb(old: Settings, new: Settings) -> None:
        seen.append((old.server.port, new.server.port))

    async def async_cb(old: Settings, new: Settings) -> None:
        async_seen.append(new.server.port)

    manager.subscribe(sync_cb)
    unsubscribe = manager.subscribe(async_cb)
    await luser_config.set("server.port", 2000)
    assert manager.get("server.port") == 2000
    assert manager.source_of("server.port").kind == "set"
    assert seen == [(1000, 2000)] and async_seen == [2000]

    with pytest.raises(ConfigError) as info:
        await manager.set("server.port", 99999)
    assert info.value.details[0]["key"] == "server.port"
    assert manager.get("server.port") == 2000  # unchanged after a refused set

    unsubscribe()
    await manager.set("server.port", 3000)
    assert async_seen == [2000] and seen[-1] == (2000, 3000)
    # overrides survive a reload, and an unchanged reload notifies nobody
    assert await luser_config.reload() is False
    assert manager.get("server.port") == 3000
    assert len(seen) == 2
    await manager.close()


async def test_a_failing_subscriber_does_not_stop_others(cfg_dir, write, caplog) -> None:  # type: ignore[no-untyped-def]
    write("default.toml", "")
    manager = await ConfigBuilder().env("test").config_dir(cfg_dir).build()
    calls: list[str] = []

    def bad(old: Settings, new: Settings) -> None:
        raise RuntimeError("boom")

    manager.subscribe(bad)
    manager.subscribe(lambda old, new: calls.append(new.server.host))
    await manager.set("server.host", "0.0.0.0")
    assert calls == ["0.0.0.0"]
    assert "订阅者执行失败" in caplog.text


async def test_reload_reads_file_changes_and_keeps_old_on_error(cfg_dir, write) -> None:  # type: ignore[no-untyped-def]
    write("default.toml", "[server]\nport = 1000\n")
    manager = await ConfigBuilder().env("test").config_dir(cfg_dir).build()
    write("default.toml", "[server]\nport = 1001\n")
    assert await manager.reload() is True
    assert manager.get("server.port") == 1001
    write("default.toml", "[server]\nport = 'x'\n")
    with pytest.raises(ConfigError):
        await manager.reload()
    assert manager.get("server.port") == 1001


async def test_init_config_and_reset(cfg_dir, write) -> None:  # type: ignore[no-untyped-def]
    write("default.toml", "[server]\nport = 1\n")
    first = await luser_config.init_config("test", cfg_dir)
    second = await luser_config.init_config("development", cfg_dir)
    assert luser_config.current_manager() is second and first is not second
    assert luser_config.get_config().env == "development"
    luser_config.reset_config()
    assert not luser_config.is_initialized()
    with pytest.raises(ConfigError):
        await luser_config.set("server.port", 2)


async def test_encryption_key_on_the_builder(cfg_dir, write, tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = generate_key("b")
    token = KeyRing.parse(key).encrypt("pw", "redis.password")
    write("default.toml", f'[redis]\npassword = "{token}"\n')
    manager = await ConfigBuilder().env("test").config_dir(cfg_dir).encryption_key(key).build()
    assert manager.get("redis.password").get_secret_value() == "pw"
    key_file = tmp_path / "ring"
    key_file.write_text(key)
    m2 = await ConfigBuilder().env("test").config_dir(cfg_dir).with_key_mgmt(key_file).build()
    assert m2.get_config().redis.password.get_secret_value() == "pw"  # type: ignore[union-attr]


async def test_key_file_named_in_config(cfg_dir, write) -> None:  # type: ignore[no-untyped-def]
    key = generate_key("c")
    (cfg_dir / "keys.txt").write_text(key)
    token = KeyRing.parse(key).encrypt("pw", "auth.secret")
    write("default.toml", f'[encryption]\nkey_file = "keys.txt"\n[auth]\nsecret = "{token}"\n')
    assert luser_config.load_config("test", cfg_dir).auth.secret.get_secret_value() == "pw"


async def test_env_var_may_hold_an_encrypted_value(cfg_dir, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ring = KeyRing.parse(generate_key("a"))
    monkeypatch.setenv("LUSER_ENCRYPTION_KEY", ring.export())
    monkeypatch.setenv("LUSER__AUTH__SECRET", ring.encrypt("from-env", "auth.secret"))
    assert luser_config.load_config("test", cfg_dir).auth.secret.get_secret_value() == "from-env"


async def test_manager_repr_has_no_secrets(cfg_dir, write) -> None:  # type: ignore[no-untyped-def]
    write("default.toml", '[auth]\nsecret = "topsecret"\n')
    manager = await ConfigBuilder().env("test").config_dir(cfg_dir).build()
    assert "topsecret" not in repr(manager) + repr(manager.snapshot)


async def test_subscriber_may_call_back_into_the_manager(cfg_dir, write) -> None:  # type: ignore[no-untyped-def]
    write("default.toml", "")
    manager = await ConfigBuilder().env("test").config_dir(cfg_dir).build()
    ports: list[int] = []

    async def follow(old: Settings, new: Settings) -> None:
        ports.append(new.server.port)
        if new.server.port == 1001:
            await manager.set("server.port", 1002)  # would deadlock if notified under the lock
        await manager.reload()

    manager.subscribe(follow)
    await manager.set("server.port", 1001)
    assert ports == [1001, 1002] and manager.get("server.port") == 1002


async def test_with_key_mgmt_accepts_ring_text_and_rejects_garbage(cfg_dir, write) -> None:  # type: ignore[no-untyped-def]
    key = generate_key("t")
    write("default.toml", f'[auth]\nsecret = "{KeyRing.parse(key).encrypt("v", "auth.secret")}"\n')
    manager = await ConfigBuilder().env("test").config_dir(cfg_dir).with_key_mgmt(key).build()
    assert manager.get("auth.secret").get_secret_value() == "v"
    with pytest.raises(ConfigError, match="with_key_mgmt"):
        ConfigBuilder().with_key_mgmt("/no/such/keyfile")

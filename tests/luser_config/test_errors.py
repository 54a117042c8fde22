"""Every error kind names key path, file and line, lists all problems, never leaks secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from luser_common import ConfigError, EncryptionError
from luser_config import KeyRing, generate_key, get_config, load_config

SECRET = "hunter2-very-secret"


def test_malformed_toml_names_file_line_and_column(cfg_dir, write) -> None:  # type: ignore[no-untyped-def]
    path = write("default.toml", "[server]\nport = 8000\nhost = \n")
    with pytest.raises(ConfigError) as info:
        load_config("test", cfg_dir)
    err = info.value
    assert str(path) in err.message and "第 3 行" in err.message
    assert err.details[0]["line"] == 3
    assert err.code == "CONFIG_ERROR"


def test_problems_in_several_files_are_reported_together(cfg_dir, write) -> None:  # type: ignore[no-untyped-def]
    write("default.toml", "[server\n")
    write("test.toml", "a = = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config("test", cfg_dir)
    assert "2 个问题" in info.value.message
    assert {Path(d["source"]).name for d in info.value.details} == {"default.toml", "test.toml"}


def test_unknown_environment(cfg_dir, write) -> None:  # type: ignore[no-untyped-def]
    write("default.toml", "")
    with pytest.raises(ConfigError, match="未知的运行环境 'prodution'"):
        load_config("prodution", cfg_dir)


def test_unknown_environment_from_luser_env(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LUSER_ENV", "staging")
    with pytest.raises(ConfigError, match="staging"):
        load_config()


def test_bad_environment_name(cfg_dir) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="不合法"):
        load_config("../etc", cfg_dir)


def test_missing_explicit_folder_and_file(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="配置目录不存在"):
        load_config("test", tmp_path / "nope")
    monkeypatch.setenv("LUSER_CONFIG_DIR", str(tmp_path / "also-nope"))
    with pytest.raises(ConfigError, match="配置目录不存在"):
        load_config("test")
    monkeypatch.delenv("LUSER_CONFIG_DIR")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="配置文件不存在") as info:
        load_config("test", files=[tmp_path / "local.toml"])
    assert str(tmp_path / "local.toml") in info.value.message


def test_bad_type_out_of_range_unknown_key_all_at_once(cfg_dir, write, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = write(
        "default.toml",
        """
        [server]
        port = 70000
        workers = "many"
        [database]
        max_conections = 5
        [cache]
        backend = "memcached"
    """,
    )
    monkeypatch.setenv("LUSER__DATABASE__MIN_CONNECTIONS", "-1")
    with pytest.raises(ConfigError) as info:
        load_config("test", cfg_dir)
    err = info.value
    by_key = {d["key"]: d for d in err.details}
    assert set(by_key) == {
        "server.port",
        "server.workers",
        "database.max_conections",
        "cache.backend",
        "database.min_connections",
    }
    assert by_key["server.port"]["line"] == 2 and by_key["server.port"]["source"] == str(path)
    assert "65535" in by_key["server.port"]["message"]
    assert by_key["server.port"]["value"] == "70000"
    assert by_key["server.workers"]["message"] == "必须是整数"
    assert by_key["database.max_conections"]["line"] == 5
    assert "未知的配置项" in by_key["database.max_conections"]["message"]
    assert by_key["database.min_connections"]["source"] == "LUSER__DATABASE__MIN_CONNECTIONS"
    assert "server.port = 70000: 超出范围, 必须 ≤ 65535" in err.message
    assert f"{path} 第 2 行" in err.message
    assert err.field == "server.port"


def test_env_var_that_needs_json(monkeypatch, cfg_dir) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LUSER__DATABASE__DATA_SOURCES", "{not json")
    with pytest.raises(ConfigError, match="LUSER__DATABASE__DATA_SOURCES"):
        load_config("test", cfg_dir)


def test_secret_values_never_appear_in_errors(cfg_dir, write, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    write(
        "default.toml",
        f"""
        [auth]
        secret = ["{SECRET}"]
        [redis]
        password = 12345
        [extensions]
        api_token = ["{SECRET}"]
    """,
    )
    monkeypatch.setenv("LUSER__DATABASE__URL", "")
    with pytest.raises(ConfigError) as info:
        load_config("test", cfg_dir)
    err = info.value
    text = f"{err} {err!r} {err.details} {err.to_dict()}"
    assert SECRET not in text and "12345" not in text
    assert "******" in err.message
    assert {d["key"] for d in err.details} >= {"auth.secret", "redis.password"}


def test_secret_str_repr_hides_plaintext(cfg_dir, write) -> None:  # type: ignore[no-untyped-def]
    write(
        "default.toml",
        f'[auth]\nsecret = "{SECRET}"\n[database]\nurl = "postgresql://u:{SECRET}@h/d"\n',
    )
    cfg = load_config("test", cfg_dir)
    assert cfg.auth.secret.get_secret_value() == SECRET
    for text in (repr(cfg), str(cfg), repr(cfg.database), cfg.model_dump_json()):
        assert SECRET not in text


def test_encrypted_value_without_key(cfg_dir, write) -> None:  # type: ignore[no-untyped-def]
    token = KeyRing.parse(generate_key("a")).encrypt(SECRET, "auth.secret")
    write("default.toml", f'[auth]\nsecret = "{token}"\n')
    with pytest.raises(EncryptionError) as info:
        load_config("test", cfg_dir)
    assert "LUSER_ENCRYPTION_KEY" in info.value.message
    assert info.value.details[0]["key"] == "auth.secret"
    assert info.value.details[0]["line"] == 2


def test_wrong_key_and_copied_ciphertext_all_reported(cfg_dir, write, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ring = KeyRing.parse(generate_key("a"))
    other = KeyRing.parse(generate_key("b"))
    copied = ring.encrypt(SECRET, "auth.secret")
    write(
        "default.toml",
        f"""
        [auth]
        secret = "{other.encrypt(SECRET, "auth.secret")}"
        [redis]
        password = "{copied}"
    """,
    )
    monkeypatch.setenv("LUSER_ENCRYPTION_KEY", ring.export())
    with pytest.raises(EncryptionError) as info:
        load_config("test", cfg_dir)
    keys = [d["key"] for d in info.value.details]
    assert keys == ["auth.secret", "redis.password"]
    assert SECRET not in str(info.value.details)


def test_require_encrypted_refuses_plaintext_secrets(cfg_dir, write) -> None:  # type: ignore[no-untyped-def]
    write("default.toml", f'[encryption]\nrequire_encrypted = true\n[auth]\nsecret = "{SECRET}"\n')
    with pytest.raises(ConfigError) as info:
        load_config("test", cfg_dir)
    assert info.value.details[0]["key"] == "auth.secret"
    assert SECRET not in info.value.message


def test_reading_before_init_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="配置尚未初始化"):
        get_config()

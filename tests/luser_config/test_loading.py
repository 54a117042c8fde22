"""Files + environment: merging, precedence, env vars typed from the schema, provenance."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from app.settings import AppConfig
from luser_config import Settings, load_config
from luser_config._loader import Loader

REPO = Path(__file__).resolve().parents[2]


def test_default_toml_matches_the_schema_defaults() -> None:
    # The shipped config folder is the service's: it holds the app's sections too.
    data = tomllib.loads((REPO / "app" / "config" / "default.toml").read_text())
    assert AppConfig.model_validate(data) == AppConfig()


@pytest.mark.parametrize("env", ["development", "production", "test"])
def test_shipped_environments_load(env: str) -> None:
    cfg = load_config(env, REPO / "app" / "config", schema=AppConfig)
    assert cfg.env == env


def test_no_config_folder_means_schema_defaults_plus_env(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # no ./config here
    monkeypatch.setenv("LUSER__SERVER__PORT", "9000")
    cfg = load_config()
    assert cfg.server.port == 9000
    assert cfg.database == Settings().database
    assert cfg.env == "development"


def test_env_file_overrides_default_deep_merge_lists_replace(cfg_dir, write) -> None:  # type: ignore[no-untyped-def]
    write(
        "default.toml",
        """
        [server]
        host = "0.0.0.0"
        port = 8000
        [encryption]
        sensitive_keys = ["extensions.a", "extensions.b"]
        [extensions.shop]
        name = "x"
        tags = ["a"]
    """,
    )
    write(
        "production.toml",
        """
        [server]
        port = 8080
        [encryption]
        sensitive_keys = ["extensions.c"]
        [extensions.shop]
        tags = ["b"]
    """,
    )
    cfg = load_config("production", cfg_dir)
    assert (cfg.server.host, cfg.server.port) == ("0.0.0.0", 8080)
    assert cfg.encryption.sensitive_keys == ["extensions.c"]
    assert cfg.extensions == {"shop": {"name": "x", "tags": ["b"]}}


def test_environment_variables_win_and_are_typed(cfg_dir, write, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    write("default.toml", "[server]\nport = 8000\n[database]\nmax_connections = 10\n")
    monkeypatch.setenv("LUSER__SERVER__PORT", "9000")
    monkeypatch.setenv("luser__database__MAX_CONNECTIONS", "42")
    monkeypatch.setenv("LUSER__SERVER__GC_FREEZE", "true")
    monkeypatch.setenv("LUSER__DATABASE__URL", "postgresql://u:p@127.0.0.1/db")
    monkeypatch.setenv("LUSER__REDIS__DB", "3")
    monkeypatch.setenv("LUSER__ENCRYPTION__SENSITIVE_KEYS", "extensions.a,extensions.b")
    monkeypatch.setenv("LUSER__DATABASE__DATA_SOURCES__REPLICA__URL", "postgresql://r@h/db")
    monkeypatch.setenv("LUSER__DATABASE__COMMAND_TIMEOUT", "")
    monkeypatch.setenv("LUSER__FEATURES__BETA", "yes")
    cfg = load_config("test", cfg_dir)
    assert cfg.server.port == 9000
    assert cfg.database.max_connections == 42
    assert cfg.server.gc_freeze is True
    assert cfg.database.url is not None
    assert cfg.database.url.get_secret_value() == "postgresql://u:p@127.0.0.1/db"
    assert cfg.redis.db == 3
    assert cfg.encryption.sensitive_keys == ["extensions.a", "extensions.b"]
    assert cfg.database.data_sources["replica"].url.get_secret_value() == "postgresql://r@h/db"  # type: ignore[union-attr]
    assert cfg.database.command_timeout is None
    assert cfg.features.enabled("beta")


def test_luser_env_and_config_dir_variables(cfg_dir, write, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    write("default.toml", "[server]\nport = 1000\n")
    write("staging.toml", "[server]\nport = 2000\n")
    monkeypatch.setenv("LUSER_ENV", "staging")
    monkeypatch.setenv("LUSER_CONFIG_DIR", str(cfg_dir))
    cfg = load_config()
    assert (cfg.env, cfg.server.port) == ("staging", 2000)


def test_unknown_top_level_keys_and_extensions_are_kept(cfg_dir, write) -> None:  # type: ignore[no-untyped-def]
    write(
        "default.toml",
        """
        [my_service]
        retries = 3
        [extensions]
        anything = { nested = [1, 2] }
        [features]
        beta = true
    """,
    )
    cfg = load_config("test", cfg_dir)
    assert cfg.model_extra == {"my_service": {"retries": 3}}
    assert cfg.extensions == {"anything": {"nested": [1, 2]}}
    assert cfg.features.enabled("beta") and not cfg.features.enabled("gamma")


def test_extra_file_layer_comes_after_env_file(cfg_dir, write, tmp_path) -> None:  # type: ignore[no-untyped-def]
    write("default.toml", "[server]\nport = 1000\n")
    write("test.toml", "[server]\nport = 2000\n")
    extra = tmp_path / "local.toml"
    extra.write_text("[server]\nport = 3000\n")
    assert load_config("test", cfg_dir, files=[extra]).server.port == 3000


def test_provenance_names_file_line_env_and_default(cfg_dir, write, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    write(
        "default.toml",
        """
        # comment
        [server]
        host = "h"

        port = 1
        [database]
        "migrations_dir" = "p"
        [partner.shop]
        app_id = "a"
    """,
    )
    write("test.toml", "server.workers = 2\n")
    monkeypatch.setenv("LUSER__SERVER__PORT", "9001")
    snap = Loader.create("test", cfg_dir).load()
    host = snap.source_of("server.host")
    assert (host.kind, Path(host.name).name, host.line) == ("file", "default.toml", 3)
    assert snap.source_of("database.migrations_dir").line == 7
    assert snap.source_of("partner.shop.app_id").line == 9
    workers = snap.source_of("server.workers")
    assert (Path(workers.name).name, workers.line) == ("test.toml", 1)
    port = snap.source_of("server.port")
    assert (port.kind, port.name) == ("env", "LUSER__SERVER__PORT")
    assert snap.source_of("server.log_level").kind == "default"


def test_snapshot_is_immutable(cfg_dir, write) -> None:  # type: ignore[no-untyped-def]
    write("default.toml", "[server]\nport = 1\n")
    cfg = load_config("test", cfg_dir)
    with pytest.raises(Exception, match="frozen"):
        cfg.server.port = 2  # type: ignore[misc]


def test_default_toml_lists_every_key_with_a_value() -> None:
    """Keys defaulting to None cannot be written in TOML; every other key belongs in the file."""
    from luser_config._paths import flatten

    data = tomllib.loads((REPO / "app" / "config" / "default.toml").read_text())
    schema = flatten(AppConfig().model_dump(mode="json"))
    wanted = {k for k, v in schema.items() if v not in (None, {}) and k != "env"}
    missing = wanted - set(flatten(data))
    assert not missing, f"add these keys to config/default.toml: {sorted(missing)}"

"""An application's own sections (``ExampleSettings``, registered by conftest) get what
the generic ones get: validation, ENC() values, provenance, environment variables, hot
reload, the typed accessor and generated docs."""

from __future__ import annotations

from pathlib import Path
from typing import assert_type

import pytest
from pydantic import Field

import luser_config
from luser_common import ConfigError, EncryptionError
from luser_config import ConfigBuilder, KeyRing, Settings, generate_key, load_config
from luser_config._docs import render_keys
from luser_config._loader import Loader

from .conftest import WriteFile
from .example_settings import ExampleSettings, PartnerConfig


def test_load_returns_the_registered_schema_with_its_defaults(cfg_dir: Path) -> None:
    cfg = load_config("test", cfg_dir)
    assert type(cfg) is ExampleSettings
    assert cfg.partner == PartnerConfig()
    assert cfg.auth.ttl_seconds == 900


def test_an_explicit_schema_wins_over_the_registered_one(cfg_dir: Path, write: WriteFile) -> None:
    write("default.toml", "[partner]\ntimeout_seconds = 3\n")
    plain = load_config("test", cfg_dir, schema=Settings)
    assert type(plain) is Settings
    assert plain.model_extra == {"partner": {"timeout_seconds": 3}}  # kept, not typed


def test_problems_in_app_sections_name_key_and_line(cfg_dir: Path, write: WriteFile) -> None:
    write(
        "default.toml",
        """
        [partner]
        timeout_seconds = 0
        [partner.media]
        region = "Not A Region"
        colour = "red"
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_config("test", cfg_dir)
    found = {d["key"]: d for d in info.value.details}
    assert set(found) == {"partner.timeout_seconds", "partner.media.region", "partner.media.colour"}
    assert found["partner.timeout_seconds"]["message"].startswith("超出范围, 必须 > 0")
    assert found["partner.timeout_seconds"]["line"] == 2
    assert found["partner.media.region"]["message"].startswith("格式不符")
    assert found["partner.media.colour"]["message"] == "未知的配置项 (拼写错误?)"


def test_enc_values_decrypt_in_app_sections(
    cfg_dir: Path, write: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = generate_key("k")
    token = KeyRing.parse(key).encrypt("-----BEGIN-----", "partner.shop.signing_pem")
    write("default.toml", f'[partner.shop]\nsigning_pem = "{token}"\n')
    monkeypatch.setenv("LUSER_ENCRYPTION_KEY", key)
    cfg = load_config("test", cfg_dir)
    assert cfg.partner.shop.signing_pem.get_secret_value() == "-----BEGIN-----"
    moved = KeyRing.parse(key).encrypt("x", "auth.secret")  # bound to another key
    write("default.toml", f'[partner.shop]\nsigning_pem = "{moved}"\n')
    with pytest.raises(EncryptionError) as info:
        load_config("test", cfg_dir)
    assert info.value.details[0]["key"] == "partner.shop.signing_pem"


def test_schema_secrets_of_app_sections_are_sensitive(cfg_dir: Path, write: WriteFile) -> None:
    # ``signing_pem`` does not look secret by name: only the schema says it is.
    write(
        "default.toml",
        '[encryption]\nrequire_encrypted = true\n[partner.shop]\nsigning_pem = "PLAIN"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_config("test", cfg_dir)
    assert [d["key"] for d in info.value.details] == ["partner.shop.signing_pem"]
    assert "PLAIN" not in str(info.value.details)
    write("default.toml", '[partner.shop]\nsigning_pem = "PLAIN"\n')
    extended = Loader.create("test", cfg_dir).load()
    assert extended.is_sensitive("partner.shop.signing_pem")
    plain = Loader.create("test", cfg_dir, schema=Settings).load()
    assert not plain.is_sensitive("partner.shop.signing_pem")


def test_environment_variables_map_and_type_app_sections(
    cfg_dir: Path, write: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("default.toml", '[partner.shop]\napp_id = "from-file"\n')
    monkeypatch.setenv("LUSER__PARTNER__SHOP__ENABLED", "true")
    monkeypatch.setenv("LUSER__Partner__Timeout_Seconds", "2.5")
    monkeypatch.setenv("LUSER__PARTNER__MEDIA", '{"region": "cn-east"}')  # a table: JSON
    luser_config.use_schema(Settings)  # the loader's own schema types the variables
    snap = Loader.create("test", cfg_dir, schema=ExampleSettings).load()
    cfg = snap.config
    assert isinstance(cfg, ExampleSettings)
    assert cfg.partner.shop.enabled is True and cfg.partner.timeout_seconds == 2.5
    assert cfg.partner.media.region == "cn-east"
    assert snap.source_of("partner.shop.enabled").short() == "env:LUSER__PARTNER__SHOP__ENABLED"
    assert snap.source_of("partner.media.region").short() == "env:LUSER__PARTNER__MEDIA"
    assert snap.source_of("partner.shop.app_id").short() == "default.toml:2"
    assert snap.source_of("partner.shop.api_key").kind == "default"


async def test_hot_reload_revalidates_app_sections(cfg_dir: Path, write: WriteFile) -> None:
    write("default.toml", "[partner]\ntimeout_seconds = 5\n")
    manager = await ConfigBuilder().env("test").config_dir(cfg_dir).install(False).build()
    seen: list[tuple[float, float]] = []

    def follow(old: Settings, new: Settings) -> None:
        assert isinstance(old, ExampleSettings) and isinstance(new, ExampleSettings)
        seen.append((old.partner.timeout_seconds, new.partner.timeout_seconds))

    manager.subscribe(follow)
    # The manager keeps the schema it was built with, whatever is registered later.
    luser_config.use_schema(Settings)
    write("default.toml", "[partner]\ntimeout_seconds = 7\n")
    assert await manager.reload() is True
    assert seen == [(5, 7)]
    write("default.toml", "[partner]\ntimeout_seconds = -1\n")
    with pytest.raises(ConfigError, match=r"partner\.timeout_seconds"):
        await manager.reload()
    assert manager.get_config(ExampleSettings).partner.timeout_seconds == 7
    await manager.close()


async def test_get_config_is_typed_and_checks_the_schema(cfg_dir: Path) -> None:
    await luser_config.init_config("test", cfg_dir)
    cfg = luser_config.get_config(ExampleSettings)
    assert_type(cfg, ExampleSettings)
    assert_type(luser_config.get_config(), Settings)
    assert cfg.partner.shop.enabled is False

    class Other(Settings):
        other: int = Field(default=0)

    with pytest.raises(ConfigError, match="use_schema"):
        luser_config.get_config(Other)


async def test_init_config_takes_an_explicit_schema(cfg_dir: Path) -> None:
    manager = await luser_config.init_config("test", cfg_dir, schema=Settings)
    assert manager.schema is Settings and type(luser_config.get_config()) is Settings


def test_use_schema_is_a_decorator_and_refuses_other_types() -> None:
    @luser_config.use_schema
    class Mine(Settings):
        mine: int = 1

    assert luser_config.current_schema() is Mine
    with pytest.raises(TypeError, match="Settings"):
        luser_config.use_schema(PartnerConfig)  # type: ignore[type-var]


def test_docs_list_app_sections_and_say_where_they_come_from() -> None:
    table = render_keys(ExampleSettings)
    assert "### `server`\n" in table  # generic: no origin
    assert "### `partner` (from `" in table and "example_settings`)" in table
    assert (
        '| `partner.shop.signing_pem` | secret str | `""` |  '
        "| **secret** (may be `ENC(...)`). PEM |" in table
    )
    assert "| `partner.timeout_seconds` | float | `15` | > 0, ≤ 120 |  |" in table
    assert "| `features.<name>` | bool | `false` |  | any other flag |" in table
    assert render_keys() == table  # the registered schema is the default


def test_a_schema_factory_is_asked_on_every_load(cfg_dir: Path, write: WriteFile) -> None:
    # An application whose sections depend on what it registers at run time.
    built: list[type[Settings]] = [Settings]
    luser_config.use_schema(lambda: built[-1])
    write("default.toml", "[partner]\ntimeout_seconds = 3\n")
    assert type(load_config("test", cfg_dir)) is Settings
    built.append(ExampleSettings)
    cfg = load_config("test", cfg_dir)
    assert isinstance(cfg, ExampleSettings) and cfg.partner.timeout_seconds == 3
    assert luser_config.current_schema() is ExampleSettings
    built.append(int)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        luser_config.current_schema()

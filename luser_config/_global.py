"""The module-level config: one installed ConfigManager, readable from anywhere."""

from __future__ import annotations

from typing import Any, overload

from luser_common import ConfigError

from ._crypto import KeyRing
from ._loader import PathLike
from ._registry import SettingsT
from .manager import _MISSING, ConfigBuilder, ConfigManager
from .schema import Settings

__all__ = [
    "current_manager",
    "get",
    "get_config",
    "init_config",
    "install",
    "is_initialized",
    "reload",
    "reset_config",
    "set",
]

_manager: ConfigManager | None = None
_NOT_READY = "配置尚未初始化: 请先调用 init_config() 或 ConfigBuilder().build()"


def install(manager: ConfigManager) -> None:
    """Make ``manager`` the module-level config (ConfigBuilder.build does this)."""
    global _manager
    _manager = manager


def is_initialized() -> bool:
    return _manager is not None


def current_manager() -> ConfigManager:
    if _manager is None:
        raise ConfigError(_NOT_READY)
    return _manager


@overload
def get_config() -> Settings: ...


@overload
def get_config(schema: type[SettingsT]) -> SettingsT: ...


def get_config(schema: type[Settings] | None = None) -> Settings:
    """The current config snapshot; ConfigError before init. ``get_config(MySettings)``
    returns it typed as the application's schema (ConfigError if loaded with another)."""
    if schema is None:
        return current_manager().get_config()
    return current_manager().get_config(schema)


def get(key: str, default: Any = _MISSING) -> Any:
    """``get("database.url")``; ConfigError before init or when the key is absent."""
    return current_manager().get(key, default)


async def set(key: str, value: Any, *, persist: bool = True) -> None:
    await current_manager().set(key, value, persist=persist)


async def reload() -> bool:
    return await current_manager().reload()


async def init_config(
    env: str | None = None,
    config_dir: PathLike | None = None,
    *,
    with_db: bool = False,
    hot_reload: bool = False,
    force_init: bool = False,
    encryption_key: KeyRing | str | None = None,
    dsn: str | None = None,
    schema: type[Settings] | None = None,
) -> ConfigManager:
    """Build and install the module-level config, closing any previous manager.
    ``schema`` None means the registered one (``use_schema``)."""
    builder = ConfigBuilder().with_db(with_db, dsn=dsn).with_hot_reload(hot_reload)
    builder.force_init(force_init)
    if schema is not None:
        builder.schema(schema)
    if env is not None:
        builder.env(env)
    if config_dir is not None:
        builder.config_dir(config_dir)
    if encryption_key is not None:
        builder.encryption_key(encryption_key)
    previous = _manager
    manager = await builder.build()
    if previous is not None and previous is not manager:
        await previous.close()
    return manager


def reset_config() -> None:
    """Forget the module-level config and stop its watchers (for tests)."""
    global _manager
    if _manager is not None:
        _manager._stop_nowait()
    _manager = None

"""Which PostgreSQL a data source name points at, resolved from luser_config."""

from __future__ import annotations

from luser_common import ConfigError
from luser_config import DatabaseConfig, DataSourceConfig, get_config, is_initialized, load_config

from .embedded import start_embedded

PRIMARY = "default"


def database_config() -> DatabaseConfig:
    """The database section of the live config (loading files + env if nobody initialised it)."""
    cfg = get_config() if is_initialized() else load_config()
    return cfg.database


def data_source_config(name: str | None = None) -> DataSourceConfig:
    db = database_config()
    if name in (None, PRIMARY):
        return db
    try:
        return db.data_sources[name]
    except KeyError as exc:
        known = ", ".join(sorted(db.data_sources)) or "无"
        raise ConfigError(
            f"未配置的数据源: {name} (已配置: {known})", field=f"database.data_sources.{name}"
        ) from exc


def resolve_url(name: str | None = None) -> str:
    """The connection URL of data source ``name``; the primary falls back to the embedded server."""
    source = data_source_config(name)
    if source.url is not None and source.url.get_secret_value():
        return source.url.get_secret_value()
    if name not in (None, PRIMARY):
        raise ConfigError(f"数据源 {name} 未配置 url", field=f"database.data_sources.{name}.url")
    return start_embedded(database_config().embedded_data_dir)

"""Which PostgreSQL a data source name points at, resolved from luser_config."""

from __future__ import annotations

from luser_common import ConfigError
from luser_config import DatabaseConfig, DataSourceConfig, get_config, is_initialized, load_config

from .embedded import start_embedded

PRIMARY = "default"
# Pool name of replica ``i`` (1-based) of data source ``base``: ``default@replica1``.
REPLICA_MARK = "@replica"


def replica_name(base: str, index: int) -> str:
    return f"{base}{REPLICA_MARK}{index}"


def database_config() -> DatabaseConfig:
    """The database section of the live config (loading files + env if nobody initialised it)."""
    cfg = get_config() if is_initialized() else load_config()
    return cfg.database


def data_source_config(name: str | None = None) -> DataSourceConfig:
    if name is not None and REPLICA_MARK in name:
        return _replica_config(name)
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


def _replica_config(name: str) -> DataSourceConfig:
    """A replica's settings: its parent source's pool settings with the replica's URL."""
    base, _, index = name.rpartition(REPLICA_MARK)
    parent = data_source_config(base)
    if not index.isdigit() or not 1 <= int(index) <= len(parent.replicas):
        field = f"database.data_sources.{base}.replicas"
        raise ConfigError(f"未配置的只读副本: {name}", field=field)
    return parent.model_copy(update={"url": parent.replicas[int(index) - 1], "replicas": []})

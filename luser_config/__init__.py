"""luser_config: layered TOML + environment + database configuration with validation,
encrypted values and hot reload.  (Being built; see issue 3.)"""

from .schema import AppConfig, DatabaseConfig, DataSourceConfig, ServerConfig

_current: AppConfig | None = None


def is_initialized() -> bool:
    return _current is not None


def get_config() -> AppConfig:
    from luser_common import ConfigError

    if _current is None:
        raise ConfigError("配置尚未初始化: 请先调用 init_config() 或 ConfigBuilder().build()")
    return _current


def load_config() -> AppConfig:
    """Load files + environment synchronously, without the database source."""
    return AppConfig()


__all__ = ["AppConfig", "DataSourceConfig", "DatabaseConfig", "ServerConfig", "get_config", "is_initialized", "load_config"]

"""luser_config: layered TOML + environment + database configuration with validation,
encrypted values and hot reload.

Sources, lowest to highest precedence: ``config/default.toml``, ``config/{env}.toml``,
the database table (``with_db``), ``LUSER__SECTION__KEY`` environment variables.
An application extends ``Settings`` with its own sections and registers the subclass
with ``use_schema``; ``get_config(MySettings)`` reads it typed. See docs/config.md.
"""

from ._crypto import KeyRing, generate_key, is_encrypted
from ._global import (
    current_manager,
    get,
    get_config,
    init_config,
    is_initialized,
    reload,
    reset_config,
    set,
)
from ._loader import KNOWN_ENVS, load_config
from ._public import public_secrets
from ._registry import current_schema, use_schema
from ._rotate import RotationReport, rotate_key
from ._snapshot import Snapshot
from .manager import ConfigBuilder, ConfigManager
from .schema import (
    CacheConfig,
    DatabaseConfig,
    DataSourceConfig,
    EncryptionConfig,
    HotReloadConfig,
    RedisConfig,
    Section,
    ServerConfig,
    Settings,
)
from .sources.base import Source
from .sources.database import DatabaseSource

__all__ = [
    "KNOWN_ENVS",
    "CacheConfig",
    "ConfigBuilder",
    "ConfigManager",
    "DataSourceConfig",
    "DatabaseConfig",
    "DatabaseSource",
    "EncryptionConfig",
    "HotReloadConfig",
    "KeyRing",
    "RedisConfig",
    "RotationReport",
    "Section",
    "ServerConfig",
    "Settings",
    "Snapshot",
    "Source",
    "current_manager",
    "current_schema",
    "generate_key",
    "get",
    "get_config",
    "init_config",
    "is_encrypted",
    "is_initialized",
    "load_config",
    "public_secrets",
    "reload",
    "reset_config",
    "rotate_key",
    "set",
    "use_schema",
]

"""The generic configuration schema (pydantic v2). Sections are immutable snapshots.

``Settings`` holds what the libraries read: server, database and data sources, redis,
encryption, the query cache and hot reload. An application adds its own sections by
subclassing it and registering the subclass (see ``luser_config.use_schema``)::

    @luser_config.use_schema
    class MySettings(luser_config.Settings):
        mailer: MailerConfig = MailerConfig()

NOTE for contributors: ``DatabaseConfig`` / ``DataSourceConfig`` field names are
read by luser_db; keep them stable. The ``database`` and ``redis`` sections are shared
contracts: add fields, never rename.

Every ``SecretStr`` field is *sensitive*: it may be stored as ``ENC(...)`` and is
redacted wherever config is shown. ``docs/config.md`` is generated from the
field descriptions and constraints here and in the registered schema (``luser config docs``).
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = [
    "CacheConfig",
    "DataSourceConfig",
    "DatabaseConfig",
    "EncryptionConfig",
    "HotReloadConfig",
    "RedisConfig",
    "Section",
    "ServerConfig",
    "Settings",
]


class Section(BaseModel):
    """Base of a config section: immutable, unknown keys are errors (typos are caught).

    Subclass it for an application's own sections."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerConfig(Section):
    host: str = Field(default="127.0.0.1", description="bind address")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port")
    workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes")
    log_level: str = Field(
        default="info",
        pattern="^(critical|error|warning|info|debug|trace)$",
        description="level of the service's loggers and uvicorn's",
    )
    gc_freeze: bool = Field(
        default=False,
        description="after startup, exempt the objects built so far from cyclic GC (gc.freeze)",
    )


class DataSourceConfig(Section):
    """One PostgreSQL data source (the primary, or a named extra such as a replica)."""

    url: SecretStr | None = Field(
        default=None,
        description="None -> embedded PostgreSQL (primary only)",
    )
    max_connections: int = Field(default=10, ge=1, le=100, description="pool size upper bound")
    min_connections: int = Field(
        default=1,
        ge=0,
        le=50,
        description="connections opened eagerly and kept",
    )
    connect_timeout: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="seconds to open a connection",
    )
    command_timeout: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="seconds per statement",
    )
    acquire_timeout: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="seconds to wait for a free pooled connection",
    )
    idle_timeout: float = Field(
        default=300.0,
        ge=0,
        le=86400,
        description="close idle pooled connections after (0 = never)",
    )
    max_lifetime: int = Field(
        default=50000,
        ge=0,
        description="queries per connection before it is replaced (0 = unlimited)",
    )
    statement_cache_size: int = Field(
        default=100,
        ge=0,
        le=10000,
        description="0 for PgBouncer transaction pooling",
    )
    pgbouncer: Literal[False, "transaction", "transaction_prepared"] = Field(
        default=False,
        description=(
            "behind PgBouncer in transaction pooling: 'transaction' (any version: unnamed"
            " statements, no session state), 'transaction_prepared' (PgBouncer >= 1.21 with"
            " max_prepared_statements: statement cache kept), false = direct; true means"
            " 'transaction'"
        ),
    )
    direct_url: SecretStr | None = Field(
        default=None,
        description=(
            "a URL straight to PostgreSQL (not through PgBouncer) for LISTEN, migrations and"
            " advisory locks; None = use url"
        ),
    )

    @field_validator("pgbouncer", mode="before")
    @classmethod
    def _pgbouncer_mode(cls, value: Any) -> Any:
        # `pgbouncer = true` (the old boolean form) keeps meaning transaction pooling.
        if value is True or (isinstance(value, str) and value.lower() in ("true", "1", "yes")):
            return "transaction"
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off", ""):
            return False
        return value

    ssl_mode: str | None = Field(
        default=None,
        pattern="^(disable|allow|prefer|require|verify-ca|verify-full)$",
    )
    ssl_ca: str | None = Field(default=None, description="CA bundle path")
    ssl_cert: str | None = Field(default=None, description="client certificate path")
    ssl_key: str | None = Field(default=None, description="client key path")
    replicas: list[SecretStr] = Field(
        default_factory=list,
        description="read replica URLs: reads outside a transaction go to a healthy one",
    )
    replica_strategy: Literal["round_robin", "least_busy"] = Field(
        default="round_robin",
        description="how a read picks among healthy replicas",
    )
    max_lag_ms: float = Field(
        default=1000,
        ge=0,
        le=86_400_000,
        description="skip a replica whose replay lags the primary by more than this",
    )
    replica_check_ms: float = Field(
        default=1000,
        ge=10,
        le=3_600_000,
        description="measure replica health and lag at most this often (cached between)",
    )


class DatabaseConfig(DataSourceConfig):
    """The primary data source plus named extra ones (``Db.use("replica")``)."""

    embedded_data_dir: str = Field(
        default=".luser/pgdata",
        description="data folder of the embedded PostgreSQL",
    )
    embedded_in_production: bool = Field(
        default=False,
        description="allow the embedded PostgreSQL (no url) when env is production",
    )
    data_sources: dict[str, DataSourceConfig] = Field(
        default_factory=dict,
        description="named extra data sources (read replicas)",
    )
    migrations_dir: str = Field(default="migrations", description="SQL migrations folder")
    sql_dir: str | list[str] = Field(
        default="sql",
        description="SQL template folder(s) read by Db.template (a list allowed)",
    )
    migration_lock_timeout: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="seconds; lock_timeout while migrating",
    )
    migration_statement_timeout: float = Field(
        default=0,
        ge=0,
        le=86400,
        description="0 = no limit",
    )
    slow_query_ms: float = Field(
        default=0,
        ge=0,
        le=3_600_000,
        description="log statements slower than this at WARNING on luser_db.sql (0 = off)",
    )
    log_parameters: bool = Field(
        default=False,
        description="show parameter values in luser_db.sql logs (masked when false)",
    )
    cursor_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key of keyset cursors; unset -> a random key per process",
    )
    sticky_after_write_ms: float = Field(
        default=1000,
        ge=0,
        le=3_600_000,
        description="after a write, this task's reads use the primary for this long (0 = off)",
    )


class RedisConfig(Section):
    url: SecretStr | None = Field(
        default=None, description="redis:// or rediss:// URL; unset -> in-memory fallbacks"
    )
    password: SecretStr | None = Field(default=None, description="overrides the URL's password")
    db: int | None = Field(
        default=None, ge=0, le=15, description="database number; overrides the URL's"
    )
    key_prefix: str = Field(default="luser:", description="prefix for every key this app writes")
    connect_timeout: float = Field(
        default=2.0, gt=0, le=60, description="seconds to connect (the query cache's Redis)"
    )
    command_timeout: float = Field(
        default=2.0, gt=0, le=300, description="seconds per command (the query cache's Redis)"
    )

    def connection_url(self) -> str | None:
        """``url`` with ``password`` and ``db`` applied; None when Redis is not configured."""
        url = self.url.get_secret_value() if self.url is not None else ""
        if not url:
            return None
        parts = urlsplit(url)
        netloc = parts.netloc
        if self.password is not None:
            host = netloc.rsplit("@", 1)[-1]
            user = netloc.rsplit("@", 1)[0].split(":", 1)[0] if "@" in netloc else ""
            netloc = f"{quote(user)}:{quote(self.password.get_secret_value(), safe='')}@{host}"
        path = f"/{self.db}" if self.db is not None else parts.path
        return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


class EncryptionConfig(Section):
    key_file: str | None = Field(
        default=None,
        description="key ring file (relative to the config folder); "
        "LUSER_ENCRYPTION_KEY / LUSER_ENCRYPTION_KEY_FILE win over it",
    )
    sensitive_keys: list[str] = Field(
        default_factory=list,
        description="extra dotted keys (fnmatch patterns) treated as secrets, "
        'e.g. "extensions.*.token"',
    )
    require_encrypted: bool = Field(
        default=False, description="refuse plaintext values for sensitive keys in config files"
    )


class CacheConfig(Section):
    """luser_db's query cache (``.cache(name)``, ``Db.find_by_cache``); read at first use."""

    enabled: bool = Field(default=True, description="false: every cache call is a plain query")
    backend: str = Field(default="memory", pattern="^(memory|redis)$", description="cache store")
    url: SecretStr | None = Field(
        default=None, description="redis URL of the redis backend; unset -> redis.url"
    )
    default_ttl_seconds: int = Field(default=300, ge=1, le=30 * 86400, description="entry lifetime")
    max_entries: int = Field(default=10000, ge=1, le=10_000_000, description="memory backend size")
    key_prefix: str = Field(default="cache:", description="prefix inside redis.key_prefix")
    notify: bool = Field(
        default=True,
        description="memory backend: announce writes to other processes by NOTIFY",
    )


class HotReloadConfig(Section):
    debounce_ms: int = Field(default=300, ge=10, le=60000, description="file change debounce")
    db_poll_seconds: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="database version polling",
    )


class Settings(BaseModel):
    """The root of the config: the generic sections. Unknown top-level tables are kept
    (an application's sections load even where only this base schema is known)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    env: str = Field(
        default="development",
        description="set by the loader to the active environment",
    )
    server: ServerConfig = Field(default_factory=ServerConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    encryption: EncryptionConfig = Field(default_factory=EncryptionConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    hot_reload: HotReloadConfig = Field(default_factory=HotReloadConfig)
    extensions: dict[str, Any] = Field(
        default_factory=dict, description="free-form data for your own code"
    )

"""The configuration schema (pydantic v2). Sections are immutable snapshots.

NOTE for contributors: ``DatabaseConfig`` / ``DataSourceConfig`` field names are
read by luser_db; keep them stable.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)


class DataSourceConfig(_Section):
    """One PostgreSQL data source (the primary, or a named extra such as a replica)."""

    url: SecretStr | None = None  # None -> embedded PostgreSQL (primary only)
    max_connections: int = Field(10, ge=1, le=100)
    min_connections: int = Field(1, ge=0, le=50)
    connect_timeout: float = Field(5.0, gt=0, le=300, description="seconds to open a connection")
    command_timeout: float | None = Field(None, gt=0, le=3600, description="seconds per statement")
    acquire_timeout: float = Field(5.0, gt=0, le=300, description="seconds to wait for a free pooled connection")
    idle_timeout: float = Field(300.0, ge=0, le=86400, description="close idle pooled connections after (0 = never)")
    max_lifetime: int = Field(50000, ge=0, description="queries per connection before it is replaced (0 = unlimited)")
    health_check: bool = True
    statement_cache_size: int = Field(100, ge=0, le=10000, description="0 for PgBouncer transaction pooling")
    pgbouncer: bool = False
    ssl_mode: str | None = Field(None, pattern="^(disable|allow|prefer|require|verify-ca|verify-full)$")
    ssl_ca: str | None = None
    ssl_cert: str | None = None
    ssl_key: str | None = None
    pool_name: str = "default"


class DatabaseConfig(DataSourceConfig):
    """The primary data source plus named extra ones (``Db.use("replica")``)."""

    embedded_data_dir: str = ".luser/pgdata"
    data_sources: dict[str, DataSourceConfig] = Field(default_factory=dict)
    migrations_dir: str = "migrations"
    migration_lock_timeout: float = Field(5.0, gt=0, le=3600)
    migration_statement_timeout: float = Field(0, ge=0, le=86400, description="0 = no limit")


class AppConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    env: str = "development"
    server: ServerConfig = Field(default_factory=ServerConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)

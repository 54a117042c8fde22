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


class JwtConfig(_Section):
    secret: SecretStr = SecretStr("dev-insecure-jwt-secret-change-me")
    algorithm: str = Field("HS256", pattern="^(HS256|HS384|HS512)$")
    issuer: str = "luser"
    access_ttl_seconds: int = Field(900, ge=30, le=86400)
    refresh_ttl_seconds: int = Field(30 * 86400, ge=60, le=365 * 86400)
    leeway_seconds: int = Field(10, ge=0, le=300)


class RedisConfig(_Section):
    url: SecretStr | None = None  # None -> in-memory fallbacks (rate limiting, caches)


class TencentVodConfig(_Section):
    secret_id: str = ""
    secret_key: SecretStr = SecretStr("")
    region: str = ""
    endpoint: str = "vod.tencentcloudapi.com"
    protocol: str = Field("https", pattern="^https?$")
    sub_app_id: int | None = None
    play_domain: str = ""                       # e.g. "1500000000.vod2.myqcloud.com"
    play_key: SecretStr = SecretStr("")         # Key hotlink protection key
    play_url_ttl_seconds: int = Field(3600, ge=60, le=86400)
    play_rlimit: int = Field(3, ge=0, le=9)
    upload_signature_ttl_seconds: int = Field(1800, ge=60, le=86400)
    procedure: str = ""                         # task flow run after upload
    callback_token: SecretStr = SecretStr("")   # shared secret in the callback URL query


class AliyunVodConfig(_Section):
    access_key_id: str = ""
    access_key_secret: SecretStr = SecretStr("")
    region_id: str = "cn-shanghai"
    endpoint: str = "vod.cn-shanghai.aliyuncs.com"
    protocol: str = Field("https", pattern="^https?$")
    play_domain: str = ""
    url_auth_key: SecretStr = SecretStr("")     # URL authentication type A primary key
    play_url_ttl_seconds: int = Field(3600, ge=60, le=86400)
    callback_private_key: SecretStr = SecretStr("")  # HTTP callback authentication key
    callback_url: str = ""


class VodConfig(_Section):
    default_provider: str = Field("tencent", pattern="^(tencent|aliyun)$")
    tencent: TencentVodConfig = Field(default_factory=TencentVodConfig)
    aliyun: AliyunVodConfig = Field(default_factory=AliyunVodConfig)


class AlipayConfig(_Section):
    enabled: bool = False
    app_id: str = ""
    seller_id: str = ""
    app_private_key: SecretStr = SecretStr("")  # PEM
    alipay_public_key: str = ""                 # PEM
    gateway_url: str = ""                       # "" -> the SDK's production/sandbox gateway
    sandbox: bool = False
    notify_url: str = ""
    return_url: str = ""
    timeout_seconds: float = Field(15, gt=0, le=120)


class WechatPayConfig(_Section):
    enabled: bool = False
    mch_id: str = ""
    app_id: str = ""
    mch_private_key: SecretStr = SecretStr("")  # PEM
    mch_cert_serial_no: str = ""
    apiv3_key: SecretStr = SecretStr("")        # 32 ASCII chars
    platform_public_key: str = ""               # PEM, public-key mode
    platform_public_key_id: str = ""            # "PUB_KEY_ID_..."
    base_url: str = "https://api.mch.weixin.qq.com"
    notify_url: str = ""
    timestamp_tolerance_seconds: int = Field(300, ge=30, le=3600)
    timeout_seconds: float = Field(15, gt=0, le=120)


class PaymentConfig(_Section):
    order_expire_minutes: int = Field(30, ge=1, le=7 * 24 * 60)
    reconcile_after_minutes: int = Field(5, ge=1, le=24 * 60)
    reconcile_interval_seconds: int = Field(60, ge=5, le=86400)
    alipay: AlipayConfig = Field(default_factory=AlipayConfig)
    wechat: WechatPayConfig = Field(default_factory=WechatPayConfig)


class AppConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    env: str = "development"
    server: ServerConfig = Field(default_factory=ServerConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    jwt: JwtConfig = Field(default_factory=JwtConfig)
    vod: VodConfig = Field(default_factory=VodConfig)
    payment: PaymentConfig = Field(default_factory=PaymentConfig)

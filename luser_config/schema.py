"""The configuration schema (pydantic v2). Sections are immutable snapshots.

NOTE for contributors: ``DatabaseConfig`` / ``DataSourceConfig`` field names are
read by luser_db; keep them stable. The ``database``, ``jwt``, ``redis``, ``vod``
and ``payment`` sections are shared contracts: add fields, never rename.

Every ``SecretStr`` field is *sensitive*: it may be stored as ``ENC(...)`` and is
redacted wherever config is shown. ``docs/config.md`` is generated from the
field descriptions and constraints here (``luser config docs``).
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerConfig(_Section):
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


class DataSourceConfig(_Section):
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


class JwtConfig(_Section):
    secret: SecretStr = Field(
        default=SecretStr("dev-insecure-jwt-secret-change-me"),
        description="HMAC signing secret",
    )
    algorithm: str = Field(
        default="HS256",
        pattern="^(HS256|HS384|HS512)$",
        description="signing algorithm",
    )
    issuer: str = Field(default="luser", description="iss claim")
    access_ttl_seconds: int = Field(
        default=900,
        ge=30,
        le=86400,
        description="access token lifetime",
    )
    refresh_ttl_seconds: int = Field(
        default=30 * 86400,
        ge=60,
        le=365 * 86400,
        description="refresh token lifetime",
    )
    leeway_seconds: int = Field(default=10, ge=0, le=300, description="clock skew tolerated")


class RedisConfig(_Section):
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


class TencentVodConfig(_Section):
    secret_id: str = ""
    secret_key: SecretStr = SecretStr("")
    region: str = ""
    endpoint: str = "vod.tencentcloudapi.com"
    protocol: str = Field(default="https", pattern="^https?$")
    sub_app_id: int | None = None
    play_domain: str = Field(default="", description="e.g. '1500000000.vod2.myqcloud.com'")
    play_key: SecretStr = Field(default=SecretStr(""), description="Key hotlink protection key")
    play_url_ttl_seconds: int = Field(default=3600, ge=60, le=86400)
    play_rlimit: int = Field(default=3, ge=0, le=9)
    upload_signature_ttl_seconds: int = Field(default=1800, ge=60, le=86400)
    procedure: str = Field(default="", description="task flow run after upload")
    callback_token: SecretStr = Field(
        default=SecretStr(""),
        description="shared secret in the callback URL query",
    )
    timeout_seconds: float = Field(default=10, gt=0, le=120, description="seconds per VOD API call")


class AliyunVodConfig(_Section):
    access_key_id: str = ""
    access_key_secret: SecretStr = SecretStr("")
    region_id: str = "cn-shanghai"
    endpoint: str = "vod.cn-shanghai.aliyuncs.com"
    protocol: str = Field(default="https", pattern="^https?$")
    play_domain: str = ""
    url_auth_key: SecretStr = Field(
        default=SecretStr(""),
        description="URL authentication type A primary key",
    )
    play_url_ttl_seconds: int = Field(default=3600, ge=60, le=86400)
    callback_private_key: SecretStr = Field(
        default=SecretStr(""),
        description="HTTP callback authentication key",
    )
    callback_url: str = ""
    callback_max_age_seconds: int = Field(
        default=300,
        ge=30,
        le=3600,
        description="reject callbacks whose X-VOD-TIMESTAMP is older/newer",
    )
    template_group_id: str = Field(
        default="",
        description="transcode template group run after upload",
    )
    timeout_seconds: float = Field(default=10, gt=0, le=120, description="seconds per VOD API call")


class VodConfig(_Section):
    default_provider: str = Field(default="tencent", pattern="^(tencent|aliyun)$")
    tencent: TencentVodConfig = Field(default_factory=TencentVodConfig)
    aliyun: AliyunVodConfig = Field(default_factory=AliyunVodConfig)


class AlipayConfig(_Section):
    enabled: bool = False
    app_id: str = ""
    seller_id: str = ""
    app_private_key: SecretStr = Field(default=SecretStr(""), description="PEM")
    alipay_public_key: str = Field(default="", description="PEM")
    gateway_url: str = Field(default="", description="'' -> the SDK's production/sandbox gateway")
    sandbox: bool = False
    notify_url: str = ""
    return_url: str = ""
    timeout_seconds: float = Field(default=15, gt=0, le=120)


class WechatPayConfig(_Section):
    enabled: bool = False
    mch_id: str = ""
    app_id: str = Field(
        default="", description="official account / website appid: native, jsapi, h5"
    )
    miniprogram_app_id: str = Field(
        default="", description="the mini program's own appid; '' -> no miniprogram payments"
    )
    mobile_app_id: str = Field(
        default="", description="the mobile app's open-platform appid; '' -> no app payments"
    )
    mch_private_key: SecretStr = Field(default=SecretStr(""), description="PEM")
    mch_cert_serial_no: str = ""
    apiv3_key: SecretStr = Field(default=SecretStr(""), description="32 ASCII chars")
    platform_public_key: str = Field(default="", description="PEM, public-key mode")
    platform_public_key_id: str = Field(default="", description="'PUB_KEY_ID_...'")
    base_url: str = "https://api.mch.weixin.qq.com"
    notify_url: str = ""
    timestamp_tolerance_seconds: int = Field(default=300, ge=30, le=3600)
    timeout_seconds: float = Field(default=15, gt=0, le=120)


class PaymentConfig(_Section):
    order_expire_minutes: int = Field(default=30, ge=1, le=7 * 24 * 60)
    reconcile_after_minutes: int = Field(default=5, ge=1, le=24 * 60)
    reconcile_interval_seconds: int = Field(default=60, ge=5, le=86400)
    topup_max_fen: int = Field(
        default=100_000, ge=1, le=10**10, description="largest open API wallet top-up, in fen"
    )
    refund_query_interval_seconds: int = Field(
        default=300, ge=5, le=86400, description="how often refunds left processing are queried"
    )
    alipay: AlipayConfig = Field(default_factory=AlipayConfig)
    wechat: WechatPayConfig = Field(default_factory=WechatPayConfig)


class EncryptionConfig(_Section):
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


class CacheConfig(_Section):
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


class FeaturesConfig(BaseModel):
    """Feature flags: the named ones below plus any other ``name = true/false``."""

    model_config = ConfigDict(frozen=True, extra="allow")
    __pydantic_extra__: dict[str, bool] = Field(init=False)

    registration: bool = Field(default=True, description="allow new accounts to sign up")
    open_api: bool = Field(default=True, description="serve the token-authenticated open API")
    payments: bool = Field(default=True, description="accept orders and payments")

    def enabled(self, name: str) -> bool:
        """Whether flag ``name`` is on; unknown flags are off."""
        return bool(getattr(self, name, False))


class HotReloadConfig(_Section):
    debounce_ms: int = Field(default=300, ge=10, le=60000, description="file change debounce")
    db_poll_seconds: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="database version polling",
    )


class OpenApiConfig(_Section):
    """The partner open API (tokens, quota, routing, request logs); see docs/open-api.md."""

    token_pepper: SecretStr = SecretStr("dev-insecure-open-api-pepper-change-me")
    channel_secret_key: SecretStr = Field(
        default=SecretStr(""),
        description="base64 32 bytes; '' -> derived from the pepper",
    )
    token_cache_ttl_seconds: float = Field(default=60.0, ge=0, le=3600)
    token_cache_size: int = Field(default=100_000, ge=1)
    log_queue_size: int = Field(default=50_000, ge=1)
    log_batch_size: int = Field(default=1_000, ge=1, le=100_000)
    log_flush_interval_seconds: float = Field(default=0.5, gt=0, le=60)
    log_writers: int = Field(default=3, ge=1, le=16)  # concurrent COPY connections
    log_retention_months: int = Field(default=6, ge=1, le=120)
    partitions_ahead_months: int = Field(default=2, ge=1, le=24)
    config_poll_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    accessed_time_flush_seconds: float = Field(default=30.0, gt=0, le=3600)
    deduction_retries: int = Field(default=5, ge=0, le=50)
    # False trades durability for latency: a crash may forget the last few hundred ms of
    # committed deductions (wallet, token and idempotency row together: never partial).
    deduction_synchronous_commit: bool = True
    # Read-only calls (play URLs, catalog search, usage) start their work while the
    # charge commits and release it once charged; false (default): charge first, then
    # work. On, a call the charge then refuses may already have reached the provider.
    overlap_reads: bool = Field(
        default=False, description="read-only calls work while the charge commits"
    )
    upstream_timeout_seconds: float = Field(default=5.0, gt=0, le=120)


class AppConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    env: str = Field(
        default="development",
        description="set by the loader to the active environment",
    )
    server: ServerConfig = Field(default_factory=ServerConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    jwt: JwtConfig = Field(default_factory=JwtConfig)
    vod: VodConfig = Field(default_factory=VodConfig)
    payment: PaymentConfig = Field(default_factory=PaymentConfig)
    open_api: OpenApiConfig = Field(default_factory=OpenApiConfig)
    encryption: EncryptionConfig = Field(default_factory=EncryptionConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    hot_reload: HotReloadConfig = Field(default_factory=HotReloadConfig)
    extensions: dict[str, Any] = Field(
        default_factory=dict, description="free-form data for your own code"
    )

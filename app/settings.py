"""The service's configuration: luser_config's generic ``Settings`` plus the app's own
sections (auth tokens, VOD, payments, the open API, feature flags).

The ``vod`` and ``payment`` sections derive from the provider registries
(``app.vod.registry.VOD_PROVIDERS``, ``app.payments.factory.PAYMENT_PROVIDERS``): one
typed field per registered provider, its config model as the type. :func:`app_schema`
builds ``AppConfig`` with those sections from the registries as they are *now*, and is
registered with ``luser_config.use_schema`` as a schema factory when this module is
imported, so every load (``luser serve``, ``luser config show/docs``, hot reloads,
``LUSER__VOD__<NAME>__...`` variables) validates, decrypts, redacts and documents every
provider's section exactly like the generic ones.

The order is: register providers, then load config. A provider registered after a
config was loaded is missing from that config (its section falls back to the config
model's defaults, :func:`app.vod.registry.vod_section`) until the next load.
``AppConfig.model_validate`` validates ``vod``/``payment`` through the current derived
models too. Read the config typed with ``luser_config.get_config(AppConfig)``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, create_model, field_validator

import luser_config
from luser_config import Section, Settings

__all__ = [
    "AlipayConfig",
    "AliyunVodConfig",
    "AppConfig",
    "FeaturesConfig",
    "JwtConfig",
    "NotificationsConfig",
    "OpenApiConfig",
    "PaymentConfig",
    "SandboxConfig",
    "TencentVodConfig",
    "VodConfig",
    "WechatPayConfig",
    "app_schema",
    "payment_config_model",
    "vod_config_model",
]

if TYPE_CHECKING:
    from collections.abc import Mapping


class JwtConfig(Section):
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


class TencentVodConfig(Section):
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
    upload_url: str = Field(
        default="",
        description="where clients upload with the signature, handed out with it "
        "('': Tencent's upload SDKs' own address; the sandbox sets its upload target)",
    )
    procedure: str = Field(default="", description="task flow run after upload")
    callback_token: SecretStr = Field(
        default=SecretStr(""),
        description="shared secret in the callback URL query",
    )
    event_mode: str = Field(
        default="http",
        pattern="^(http|pull)$",
        description="'http': event callbacks to /api/vod/callbacks/tencent; "
        "'pull': reliable callbacks (PullEvents + ConfirmEvents), HTTP callbacks refused",
    )
    timeout_seconds: float = Field(default=10, gt=0, le=120, description="seconds per VOD API call")


class AliyunVodConfig(Section):
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


class VodConfig(Section):
    """The generic ``[vod]`` keys; :func:`vod_config_model` adds one typed field per
    registered provider (``[vod.<name>]``)."""

    default_provider: str = Field(default="tencent", description="a registered VOD provider")
    jobs_interval_seconds: float = Field(
        default=30,
        ge=0,
        le=3600,
        description="how often each service process deletes media at the provider and pulls "
        "Tencent events (0: not in the service; run 'luser videos jobs --loop'); also the "
        "first retry delay of a failed deletion (doubling)",
    )
    delete_max_attempts: int = Field(
        default=10,
        ge=1,
        le=100,
        description="provider deletions tried this often before they wait for an operator",
    )


class AlipayConfig(Section):
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


class WechatPayConfig(Section):
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


class PaymentConfig(Section):
    """The generic ``[payment]`` keys; :func:`payment_config_model` adds one typed field
    per registered provider (``[payment.<name>]``)."""

    order_expire_minutes: int = Field(default=30, ge=1, le=7 * 24 * 60)
    reconcile_after_minutes: int = Field(default=5, ge=1, le=24 * 60)
    reconcile_interval_seconds: int = Field(default=60, ge=5, le=86400)
    topup_max_fen: int = Field(
        default=100_000, ge=1, le=10**10, description="largest open API wallet top-up, in fen"
    )
    refund_query_interval_seconds: int = Field(
        default=300, ge=5, le=86400, description="how often refunds left processing are queried"
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


class OpenApiConfig(Section):
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
    # Usage rollups (router_log_usage) are small: kept longer than raw logs.
    usage_retention_months: int = Field(default=13, ge=1, le=120)
    partitions_ahead_months: int = Field(default=2, ge=1, le=24)
    # The usage rollup job (app.open_api.rollup): reports catch up themselves, so this
    # bounds how many rows a report may have to count, not how stale it is.
    rollup_interval_seconds: float = Field(
        default=5.0, gt=0, le=3600, description="how often router_log_usage catches up"
    )
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


class NotificationsConfig(Section):
    """What subscribers are told on payment, refund and expiry (app.notify)."""

    drain_interval_seconds: float = Field(
        default=10,
        ge=0,
        le=3600,
        description="how often each service process delivers waiting notifications and "
        "looks for expired subscriptions (0: not in the service)",
    )
    max_attempts: int = Field(
        default=8, ge=1, le=100, description="delivery attempts before a notification is failed"
    )
    retry_seconds: float = Field(
        default=30, gt=0, le=3600, description="delay before the first retry (doubling, max 1 h)"
    )


class SandboxConfig(Section):
    enabled: bool | None = Field(
        default=None,
        description="VOD and payments against the built-in offline sandbox; "
        "unset: on in development or with the embedded database, with one worker "
        "(never in production)",
    )
    public_url: str = Field(
        default="",
        description="the service's URL the sandbox sends notifications to "
        "('' -> http://<server.host>:<server.port>)",
    )


class AppConfig(Settings):
    """The service's whole configuration: the generic sections and the app's.

    ``vod`` and ``payment`` hold instances of the registry-derived models
    (:func:`vod_config_model`, :func:`payment_config_model`), subclasses of the
    declared types.
    """

    jwt: JwtConfig = Field(default_factory=JwtConfig)
    vod: VodConfig = Field(default_factory=lambda: vod_config_model()())
    payment: PaymentConfig = Field(default_factory=lambda: payment_config_model()())
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    open_api: OpenApiConfig = Field(default_factory=OpenApiConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)

    @field_validator("vod", mode="before")
    @classmethod
    def _registered_vod(cls, value: Any) -> Any:
        # Validate through the registry's section model (typed provider sections).
        return _through(vod_config_model(), value)

    @field_validator("payment", mode="before")
    @classmethod
    def _registered_payment(cls, value: Any) -> Any:
        return _through(payment_config_model(), value)


def _through(model: type[BaseModel], value: Any) -> Any:
    if isinstance(value, model):
        return value
    if isinstance(value, BaseModel):
        value = dict(value)
    return model.model_validate(value)


_built: dict[tuple[Any, ...], type[BaseModel]] = {}

# The provider registries, by import path. They are imported when a schema is built,
# not with this module: the registries import this module for the config models (so
# there is no import cycle), and loading config needs no provider SDK (a library-only
# install, without the ``service`` extra, still loads the service's config files).
PROVIDER_REGISTRIES = {
    "vod": "app.vod.registry:VOD_PROVIDERS",
    "payment": "app.payments.factory:PAYMENT_PROVIDERS",
}


def _registry(port: str) -> Mapping[str, Any] | None:
    """The registry of ``port``; None when its providers cannot be imported (no SDKs)."""
    module, _, name = PROVIDER_REGISTRIES[port].partition(":")
    try:
        registry: Mapping[str, Any] = getattr(importlib.import_module(module), name)
    except ImportError:
        return None
    return registry


def _with_providers(base: type[Section], port: str, about: str) -> type[Any]:
    """``base`` plus one field per registered provider: ``name: <its config model>``.

    Without the registry (a library-only install) provider sections are kept untyped,
    as luser_config keeps the tables of a schema it does not know."""
    providers = _registry(port)
    key = (base, None if providers is None else tuple((n, s.config) for n, s in providers.items()))
    if key not in _built:
        if providers is None:
            untyped = {
                "model_config": ConfigDict(frozen=True, extra="allow"),
                "__module__": __name__,
            }
            _built[key] = type(base.__name__, (base,), untyped)
        else:
            fields: dict[str, Any] = {
                name: (
                    spec.config,
                    Field(
                        default_factory=spec.config,
                        description=f"the {name} {about} provider's section",
                    ),
                )
                for name, spec in providers.items()
            }
            _built[key] = create_model(base.__name__, __base__=base, __module__=__name__, **fields)
    return _built[key]


def vod_config_model() -> type[VodConfig]:
    """``VodConfig`` with a ``[vod.<name>]`` field per registered VOD provider."""
    model: type[VodConfig] = _with_providers(VodConfig, "vod", "VOD")
    return model


def payment_config_model() -> type[PaymentConfig]:
    """``PaymentConfig`` with a ``[payment.<name>]`` field per registered payment provider."""
    model: type[PaymentConfig] = _with_providers(PaymentConfig, "payment", "payment")
    return model


def app_schema() -> type[AppConfig]:
    """``AppConfig`` whose ``vod`` and ``payment`` sections are the registry-derived
    models: what luser_config loads, validates, decrypts, redacts and documents."""
    key = (AppConfig, vod_config_model(), payment_config_model())
    if key not in _built:
        _built[key] = create_model(
            "AppConfig",
            __base__=AppConfig,
            __module__=__name__,
            vod=(key[1], Field(default_factory=key[1])),
            payment=(key[2], Field(default_factory=key[2])),
        )
    schema: type[AppConfig] = _built[key]  # type: ignore[assignment]
    return schema


luser_config.use_schema(app_schema)

"""What the service refuses to start with: public secrets, the sandbox and, unless
allowed, the embedded database in production; provider settings its registries do not
know and a database without the service's schema anywhere."""

from __future__ import annotations

from app.files import CONFIG_DIR
from app.settings import AppConfig
from luser_common import ConfigError
from luser_config import public_secrets
from luser_db import Db
from luser_db.migrations import SCHEMA_TABLE

__all__ = [
    "PRODUCTION_ENVS",
    "UNMIGRATED",
    "check_migrated",
    "check_production",
    "production_problems",
    "provider_problems",
    "sandbox_enabled",
    "uses_embedded",
]

PRODUCTION_ENVS = ("production", "prod")
UNMIGRATED = "数据库未迁移, 请先运行 luser migrate up"


def uses_embedded(config: AppConfig) -> bool:
    """Whether the primary database is the embedded PostgreSQL (no ``database.url``)."""
    url = config.database.url
    return url is None or not url.get_secret_value()


def sandbox_enabled(config: AppConfig) -> bool:
    """Whether VOD and payments run against the built-in sandbox.

    ``sandbox.enabled`` decides when set; unset, the sandbox is on in development and
    with the embedded database (a newcomer's ``luser serve``) in a single worker (its
    stand-ins live in the service process), never in production.
    """
    if config.sandbox.enabled is not None:
        return config.sandbox.enabled
    if config.env.lower() in PRODUCTION_ENVS or config.server.workers > 1:
        return False
    return config.env == "development" or uses_embedded(config)


def provider_problems(config: AppConfig) -> list[str]:
    """Provider names and sections the VOD and payment registries do not know."""
    from app.payments.factory import PAYMENT_PROVIDERS
    from app.vod.registry import VOD_PROVIDERS

    problems = []
    if config.vod.default_provider not in VOD_PROVIDERS:
        problems.append(
            f"vod.default_provider 不是已注册的视频点播服务: {config.vod.default_provider} "
            f"(可选: {', '.join(VOD_PROVIDERS)})"
        )
    # Sections of unknown providers are refused by the schema itself (derived from the
    # registries, unknown keys are errors); a section registered after the load is not.
    for section, known in (("vod", VOD_PROVIDERS), ("payment", PAYMENT_PROVIDERS)):
        loaded = type(getattr(config, section)).model_fields
        problems += [f"{section}.{name} 未在加载配置前注册" for name in known if name not in loaded]
    if config.sandbox.enabled and config.server.workers > 1:
        problems.append("server.workers 在沙箱模式下必须为 1 (沙箱在服务进程内运行)")
    return problems


def _env_var(key: str) -> str:
    return "LUSER__" + key.upper().replace(".", "__")


def production_problems(config: AppConfig) -> list[str]:
    """Why ``config`` must not run in production (empty when it may, or is not production)."""
    if config.env.lower() not in PRODUCTION_ENVS:
        return []
    problems = [
        f"{key} 使用了公开的默认值, 请设置 {_env_var(key)} (或 ENC(...) 加密值)"
        # Published = in the service's packaged config, or in the config folder in use.
        for key in dict.fromkeys([*public_secrets(config, CONFIG_DIR), *public_secrets(config)])
    ]
    problems += [f"{key} 不能为空, 请设置 {_env_var(key)}" for key in _empty_required(config)]
    if config.sandbox.enabled:
        problems.append(
            "sandbox.enabled 不能在生产环境开启: 沙箱的支付和点播不会真实扣款或播放 "
            "(请删除该设置并配置真实的服务商)"
        )
    if uses_embedded(config) and not config.database.embedded_in_production:
        problems.append(
            "未配置 database.url: 生产环境默认不使用内置 PostgreSQL "
            "(确需使用请设置 database.embedded_in_production = true)"
        )
    return problems


def _empty_required(config: AppConfig) -> list[str]:
    # Secrets production cannot run without: an empty one is as public as the default.
    required = {
        "jwt.secret": config.jwt.secret,
        "open_api.token_pepper": config.open_api.token_pepper,
    }
    return [key for key, secret in required.items() if not secret.get_secret_value()]


def check_production(config: AppConfig) -> None:
    """Raise ConfigError naming every reason ``config`` must not run (in production,
    or anywhere for provider settings the registries do not know)."""
    problems = provider_problems(config)
    if problems:
        raise ConfigError("配置错误: " + "; ".join(problems), field=_first_key(problems))
    problems = production_problems(config)
    if problems:
        raise ConfigError("生产环境拒绝启动: " + "; ".join(problems), field=_first_key(problems))


def _first_key(problems: list[str]) -> str:
    return problems[0].split(" ", 1)[0]


async def check_migrated() -> None:
    """Raise ConfigError when the database has no applied migration (a fresh database)."""
    exists = await Db.query_int(
        "select count(*) from pg_class where oid = to_regclass(?)", SCHEMA_TABLE
    )
    if not exists or not await Db.query_int(f"select count(*) from {SCHEMA_TABLE}"):
        raise ConfigError(UNMIGRATED)

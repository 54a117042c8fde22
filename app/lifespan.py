"""The application's one lifespan: config, database pool, the services container, then
every feature's lifespan (``app.features``); shutdown runs in reverse order."""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import luser_config
import luser_db
from app.config_checks import check_migrated, check_production
from app.container import Services
from app.features import run_features
from app.sandbox import sandbox_mode
from app.settings import AppConfig
from luser_common import AppError
from luser_common.utils import SecretUrlFilter

logger = logging.getLogger("luser.app")

TRACE = 5  # uvicorn's "trace" level, below DEBUG


async def resolve_config(explicit: AppConfig | None) -> tuple[AppConfig, bool]:
    """The config to run with, and whether this call installed the process-wide one.

    An explicit config (tests, embedding) is used as given; otherwise the process
    config is initialised from files + environment unless someone already did.
    """
    if explicit is not None:
        return explicit, False
    if luser_config.is_initialized():
        return luser_config.get_config(AppConfig), False
    await luser_config.init_config(schema=AppConfig)
    return luser_config.get_config(AppConfig), True


ACCESS_LOGGERS = ("uvicorn.access", "luser.access")


def mask_secrets_in_access_logs() -> None:
    """Access log lines carry the query string: the Tencent callback's ``?token=``, a
    signed URL's ``sign=``. Mask such parameters (idempotent, process-wide)."""
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, SecretUrlFilter) for f in logger.filters):
            logger.addFilter(SecretUrlFilter())


def apply_log_level(config: AppConfig) -> int:
    """``server.log_level`` for the service's own loggers (uvicorn's get it from ``serve``);
    returns the level it replaced, restored at shutdown."""
    logger = logging.getLogger("luser")
    previous = logger.level
    level = config.server.log_level.upper()
    logger.setLevel(TRACE if level == "TRACE" else level)
    return previous


def init_database(config: AppConfig) -> None:
    db = config.database
    url = db.url.get_secret_value() if db.url is not None else None
    luser_db.init(
        url or None,
        min_size=min(db.min_connections, db.max_connections),
        max_size=db.max_connections,
        acquire_timeout=db.acquire_timeout,
        pgbouncer=db.pgbouncer,
        direct_url=db.direct_url.get_secret_value() if db.direct_url is not None else None,
    )
    luser_db.configure_sql_log(slow_query_ms=db.slow_query_ms, log_parameters=db.log_parameters)


def freeze_startup_heap() -> None:
    """Move everything built at startup into the GC's permanent generation.

    The imported SDKs, pydantic models and routes are ~120k objects that live as long
    as the process; without this every full collection walks them all again (measured
    under load: several 40-50 ms pauses a minute). Later garbage is collected as usual.
    """
    gc.collect()
    gc.freeze()


class CleanStartupFailure:
    """Pure ASGI: a startup refused with an AppError is reported by its message alone.

    uvicorn logs the lifespan's failure message and exits non-zero; Starlette's message
    is the whole traceback, which buries a one-line, actionable reason.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_clean(message: Message) -> None:
            # Starlette sends "startup.failed" from inside its except block.
            error = sys.exc_info()[1]
            if message["type"] == "lifespan.startup.failed" and isinstance(error, AppError):
                message = {**message, "message": f"启动失败: {error.message}"}
            await send(message)

        await self.app(scope, receive, send_clean)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    config, installed = await resolve_config(app.state.explicit_config)
    check_production(config)
    previous_log_level = apply_log_level(config)
    init_database(config)
    try:
        await check_migrated()
    except AppError:
        await luser_db.close()
        logging.getLogger("luser").setLevel(previous_log_level)
        if installed:
            luser_config.reset_config()
        raise
    sandbox = contextlib.AsyncExitStack()  # sandbox mode: providers aimed at stand-ins
    try:
        config = await sandbox.enter_async_context(sandbox_mode(config))
        app.state.config = config
        services: Services = app.state.build_services(config)
        app.state.services = services
        try:
            async with run_features(app.state.features, services):
                if config.server.gc_freeze:
                    freeze_startup_heap()
                yield
        finally:
            await services.aclose()
    finally:
        await sandbox.aclose()
        await luser_db.close()
        logging.getLogger("luser").setLevel(previous_log_level)
        if installed:
            luser_config.reset_config()

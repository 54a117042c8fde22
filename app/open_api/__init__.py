"""The partner open API: sk- tokens, quota deduction, channel routing, request logs.

Wiring (done once in ``app.create_app``)::

    from app import open_api
    open_api.install(app)      # routes, /metrics, lifespan hooks (writer, refresher)

``install`` adds the routes of ``OPERATIONS`` (skip with ``routes=False`` when they
are already in the app's route list and OpenAPI document) and wraps the app's
lifespan so the service starts after the app's own startup (config, database)
and stops before its shutdown, flushing every queued log row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette

from app.open_api.errors import (
    AbilityNotAllowed,
    CallInterrupted,
    DeductionFailed,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    InsufficientBalance,
    IpNotAllowed,
    NoChannel,
    OpenTokenDisabled,
    OpenTokenExpired,
    OpenTokenInvalid,
    OwnerDisabled,
    QuotaExceeded,
    UpstreamFailed,
)
from app.open_api.logs import LogFilter, LogRow, LogWriter, daily_usage, query_logs
from app.open_api.quota import Deduction, deduct_quota, refund_quota
from app.open_api.recovery import RecoveryReport, recover
from app.open_api.router import ConfigRefresher, RouterConfig, load_router_config
from app.open_api.routes import OPERATIONS, metrics_route
from app.open_api.service import CallContext, OpenApi
from app.open_api.tokens import Expired, Invalid, TokenInfo, TokenStore, Valid

__all__ = [
    "OPERATIONS",
    "AbilityNotAllowed",
    "CallContext",
    "CallInterrupted",
    "ConfigRefresher",
    "Deduction",
    "DeductionFailed",
    "Expired",
    "IdempotencyKeyInProgress",
    "IdempotencyKeyReused",
    "InsufficientBalance",
    "Invalid",
    "IpNotAllowed",
    "LogFilter",
    "LogRow",
    "LogWriter",
    "NoChannel",
    "OpenApi",
    "OpenTokenDisabled",
    "OpenTokenExpired",
    "OpenTokenInvalid",
    "OwnerDisabled",
    "QuotaExceeded",
    "RecoveryReport",
    "RouterConfig",
    "TokenInfo",
    "TokenStore",
    "UpstreamFailed",
    "Valid",
    "daily_usage",
    "deduct_quota",
    "install",
    "lifespan",
    "load_router_config",
    "query_logs",
    "recover",
    "refund_quota",
]


@asynccontextmanager
async def lifespan(app: Starlette, service: OpenApi | None = None) -> AsyncIterator[OpenApi]:
    """Start the open API on ``app`` (after the app's config is loaded) and stop it after."""
    if service is None:
        config = getattr(app.state, "config", None)
        service = OpenApi(getattr(config, "open_api", None), vod=getattr(config, "vod", None))
    app.state.open_api = service
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def install(app: Starlette, *, routes: bool = True, service: OpenApi | None = None) -> None:
    """Add the open API routes and /metrics to ``app`` and hook its lifespan."""
    present = {
        (getattr(r, "path", None), m)
        for r in app.router.routes
        for m in (getattr(r, "methods", None) or ())
    }
    if routes:
        for op in OPERATIONS:
            if (op.path, op.method) not in present:
                app.router.routes.append(op.route())
    if ("/metrics", "GET") not in present:
        app.router.routes.append(metrics_route())
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def wrapped(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state, lifespan(app, service):
            yield state

    app.router.lifespan_context = wrapped

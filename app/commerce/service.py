"""The commerce services built once per application, and how the app runs them.

:func:`install` adds the routes to an app and wraps its lifespan: after the
app's own startup (config loaded, database initialised) it builds
:class:`Commerce` from ``config.payment`` into ``app.state.commerce`` and
starts the reconciliation job; on shutdown it stops the job first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette

from app.commerce.notifications import Payments
from app.commerce.orders import Orders
from app.commerce.plans import Plans
from app.commerce.reconcile import Reconciler, reconcile_forever
from app.commerce.refunds import Refunds, settle_refunds_forever
from app.commerce.subscriptions import Subscriptions
from app.payments import PaymentProviders, build_providers
from luser_config.schema import AppConfig

__all__ = ["Commerce", "commerce_lifespan", "install"]


@dataclass
class Commerce:
    """Everything the commerce routes and jobs use."""

    config: AppConfig
    providers: PaymentProviders
    plans: Plans
    orders: Orders
    subscriptions: Subscriptions
    refunds: Refunds
    payments: Payments
    reconciler: Reconciler

    @classmethod
    def build(cls, config: AppConfig, providers: PaymentProviders | None = None) -> Commerce:
        """Providers default to the enabled ones in ``config.payment`` (offline: no I/O)."""
        providers = providers if providers is not None else build_providers(config.payment)
        subscriptions = Subscriptions()
        orders = Orders(providers, config.payment)
        refunds = Refunds(providers, subscriptions)
        payments = Payments(providers, subscriptions, refunds)
        reconciler = Reconciler(providers, config.payment, orders, payments, refunds)
        return cls(config, providers, Plans(), orders, subscriptions, refunds, payments, reconciler)


@contextlib.asynccontextmanager
async def commerce_lifespan(
    app: Starlette, *, providers: PaymentProviders | None = None, reconcile: bool = True
) -> AsyncIterator[None]:
    """Build ``app.state.commerce`` and run reconciliation and refund settlement while
    the app runs.

    Needs ``app.state.config`` (set by the app's own lifespan, which must be entered first).
    """
    commerce = Commerce.build(app.state.config, providers)
    app.state.commerce = commerce
    tasks: list[asyncio.Task[None]] = []
    if reconcile and commerce.providers.names():
        payment = commerce.config.payment
        tasks.append(
            asyncio.create_task(
                reconcile_forever(commerce.reconciler, payment.reconcile_interval_seconds)
            )
        )
        tasks.append(
            asyncio.create_task(
                settle_refunds_forever(commerce.refunds, payment.refund_query_interval_seconds)
            )
        )
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def install(
    app: Starlette,
    *,
    providers: PaymentProviders | None = None,
    reconcile: bool = True,
    routes: bool = True,
) -> None:
    """Add the commerce routes to ``app`` and chain :func:`commerce_lifespan` after its own.

    ``providers`` replaces the ones built from config (tests); ``routes=False``
    when the app already lists :data:`app.commerce.OPERATIONS` itself. A second
    call on the same app does nothing.
    """
    from app.commerce.routes import OPERATIONS

    if getattr(app.state, "commerce_installed", False):
        return
    app.state.commerce_installed = True
    if routes:
        app.router.routes.extend(op.route() for op in OPERATIONS)
    inner: Callable[[Any], Any] = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with (
            inner(app) as state,
            commerce_lifespan(app, providers=providers, reconcile=reconcile),
        ):
            yield state

    app.router.lifespan_context = lifespan

"""Commerce as a feature of the app: its operations, the reconciliation job and the
refund settlement job."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from app.commerce.reconcile import reconcile_forever
from app.commerce.refunds import settle_refunds_forever
from app.commerce.routes import OPERATIONS
from app.features import FeaturePackage

if TYPE_CHECKING:
    from app.container import Services

__all__ = ["feature", "reconciliation"]


@contextlib.asynccontextmanager
async def reconciliation(services: Services) -> AsyncIterator[None]:
    """Reconcile payments and settle refunds left processing while the app runs (when a
    payment provider is enabled); shutdown cancels the jobs first."""
    commerce = services.commerce
    tasks: list[asyncio.Task[None]] = []
    if commerce.providers.names():
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


feature = FeaturePackage("commerce", OPERATIONS, jobs=reconciliation)

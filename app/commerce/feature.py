"""Commerce as a feature of the app: its operations and the reconciliation job."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from app.commerce.reconcile import reconcile_forever
from app.commerce.routes import OPERATIONS
from app.features import FeaturePackage

if TYPE_CHECKING:
    from app.container import Services

__all__ = ["feature", "reconciliation"]


@contextlib.asynccontextmanager
async def reconciliation(services: Services) -> AsyncIterator[None]:
    """Reconcile payments while the app runs (when a payment provider is enabled);
    shutdown cancels the job first."""
    commerce = services.commerce
    task: asyncio.Task[None] | None = None
    if commerce.providers.names():
        interval = commerce.config.payment.reconcile_interval_seconds
        task = asyncio.create_task(reconcile_forever(commerce.reconciler, interval))
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


feature = FeaturePackage("commerce", OPERATIONS, jobs=reconciliation)

"""The open API as a feature of the app: its operations, ``/metrics`` and the service's
background work (config refresher, log writer, access-time flusher)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from app.features import FeaturePackage
from app.open_api.routes import OPERATIONS, metrics_route

if TYPE_CHECKING:
    from app.container import Services

__all__ = ["feature", "running"]


@contextlib.asynccontextmanager
async def running(services: Services) -> AsyncIterator[None]:
    """Start ``services.open_api`` and stop it after, flushing every queued log row."""
    async with services.open_api.running():
        yield


feature = FeaturePackage("open_api", OPERATIONS, routes=(metrics_route(),), jobs=running)

"""The catalog as a feature of the app: its operations (public reads first, since
Starlette tries routes in order) and its VOD jobs. Its VOD provider clients are shared
services, closed with the container."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from app.catalog.routes import OPERATIONS
from app.catalog.vod_jobs import running
from app.features import FeaturePackage

if TYPE_CHECKING:
    from app.container import Services

__all__ = ["feature"]


def _jobs(services: Services) -> AbstractAsyncContextManager[None]:
    """Media deletions at the provider and, in pull mode, Tencent's reliable events."""
    return running(services.media, services.config.vod)


feature = FeaturePackage("catalog", OPERATIONS, jobs=_jobs)

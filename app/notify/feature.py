"""Notifications to users as a feature of the app: no operations, one job that
delivers the outbox and notes expired subscriptions."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from app.features import FeaturePackage
from app.notify.jobs import running

if TYPE_CHECKING:
    from app.container import Services

__all__ = ["feature"]


def _jobs(services: Services) -> AbstractAsyncContextManager[None]:
    return running(services.outbox, services.config.notifications)


feature = FeaturePackage("notify", (), jobs=_jobs)

"""A feature package's public face: its HTTP operations and the lifespan of its jobs.

Each feature package (``app.accounts``, ``app.catalog``, ``app.commerce``, ``app.open_api``)
has a ``feature`` module whose ``feature`` object satisfies :class:`Feature`.
``create_app`` lists the features once: their routes become the app's routes, and the app's
single lifespan enters every feature's lifespan with an ``AsyncExitStack`` after the shared
startup (config, database, :class:`~app.container.Services`) and leaves them in reverse
order before the shared shutdown. Nothing patches ``app.router.lifespan_context``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from starlette.routing import BaseRoute

from app.web.operation import Operation

if TYPE_CHECKING:
    from app.container import Services

__all__ = ["Feature", "FeaturePackage", "feature_routes", "run_features"]

Jobs = Callable[["Services"], AbstractAsyncContextManager[None]]


class Feature(Protocol):
    """What ``create_app`` needs from a feature package."""

    @property
    def name(self) -> str: ...

    @property
    def operations(self) -> Sequence[Operation]:
        """Every endpoint, public and admin, in the order Starlette should try them."""
        ...

    @property
    def routes(self) -> Sequence[BaseRoute]:
        """Plain routes outside the OpenAPI document (``/metrics``)."""
        ...

    def lifespan(self, services: Services) -> AbstractAsyncContextManager[None]:
        """Start the feature's background jobs and pools; stop them on exit."""
        ...


@contextlib.asynccontextmanager
async def _no_jobs(services: Services) -> AsyncIterator[None]:
    yield


@dataclass(frozen=True)
class FeaturePackage:
    """The plain :class:`Feature`: a name, operations, extra routes and a jobs lifespan."""

    name: str
    operations: Sequence[Operation]
    routes: Sequence[BaseRoute] = ()
    jobs: Jobs = _no_jobs

    def lifespan(self, services: Services) -> AbstractAsyncContextManager[None]:
        return self.jobs(services)


def feature_routes(features: Iterable[Feature]) -> list[BaseRoute]:
    """The features' routes, operations first, in the features' order."""
    features = list(features)
    routes: list[BaseRoute] = [op.route() for f in features for op in f.operations]
    routes += [route for f in features for route in f.routes]
    return routes


@contextlib.asynccontextmanager
async def run_features(features: Iterable[Feature], services: Services) -> AsyncIterator[None]:
    """Enter every feature's lifespan in order; on exit (or a failed start) leave the
    entered ones in reverse order."""
    async with AsyncExitStack() as stack:
        for feature in features:
            await stack.enter_async_context(feature.lifespan(services))
        yield

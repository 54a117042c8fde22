"""The one services container, reached from a page as from an operation."""

from __future__ import annotations

from starlette.requests import Request

from app.container import Services

__all__ = ["services"]


def services(request: Request) -> Services:
    """The app's :class:`~app.container.Services` (built by its lifespan)."""
    built: Services = request.app.state.services
    return built

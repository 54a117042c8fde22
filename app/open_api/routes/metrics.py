"""Prometheus metrics at /metrics (a plain Starlette route, outside the OpenAPI document)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.open_api.metrics import CONTENT_TYPE_LATEST
from app.open_api.service import OpenApi
from luser_common import NotFound

__all__ = ["metrics_route"]


async def metrics_endpoint(request: Request) -> Response:
    services = getattr(request.app.state, "services", None)
    if services is None:
        raise NotFound("指标未启用")
    service: OpenApi = services.open_api
    return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def metrics_route() -> Route:
    return Route("/metrics", metrics_endpoint, methods=["GET"], name="open_api_metrics")

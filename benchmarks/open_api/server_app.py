"""The service as ``bench_open_api.py`` runs it in its own uvicorn process.

``BENCH_OPEN_API_CONFIG`` holds the AppConfig as JSON (database URL, pepper, the stub's
endpoint and keys); the app gets one extra route, ``/bare/videos/{id}/play_url``: the
same catalog lookup and upstream call as ``/open/v1/videos/{id}/play_url`` without the
key check, routing, deduction and log -- the baseline the gateway's overhead is
measured against. Run it like the service::

    BENCH_OPEN_API_CONFIG='{...}' uvicorn benchmarks.open_api.server_app:create_app --factory
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.main import create_app as create_service
from luser_config.schema import AppConfig


async def bare(request: Request) -> JSONResponse:
    services = request.app.state.services
    video = await services.catalog.public_video(int(request.path_params["id"]))
    signed = await services.providers.get(video.provider).play_url(video.media_id)
    return JSONResponse({"success": True, "data": {"url": signed.url}})


def create_app() -> Starlette:
    config = AppConfig.model_validate_json(os.environ["BENCH_OPEN_API_CONFIG"])
    app = create_service(config)
    app.router.routes.append(Route("/bare/videos/{id}/play_url", bare))
    return app

"""The service as ``bench_open_api.py`` runs it in its own uvicorn process.

``BENCH_OPEN_API_CONFIG`` holds the AppConfig as JSON (database URL, pepper, the stub's
endpoint and keys); the app gets one extra operation, ``/bare/videos/{id}/play_url``:
``/open/v1/videos/{id}/play_url`` without the key check, routing, deduction and log --
the same operation machinery, catalog lookup, upstream call and response envelope.
It is the baseline the gateway's overhead is measured against. Run it like the
service::

    BENCH_OPEN_API_CONFIG='{...}' uvicorn benchmarks.open_api.server_app:create_app --factory
"""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette

from app.main import create_app as create_service
from app.settings import AppConfig
from app.web.operation import Call, operation


@operation("GET", "/bare/videos/{id}/play_url", summary="baseline", tag="bench")
async def bare(call: Call) -> Any:
    video_id = call.path_id()
    video = await call.services.catalog.public_video(video_id)
    client = call.services.providers.get(video.provider)
    signed = await client.play_url(video.media_id, client_ip=call.client_ip)
    return {"video_id": video_id, "url": signed.url, "expires_at": signed.expires_at}


def create_app() -> Starlette:
    config = AppConfig.model_validate_json(os.environ["BENCH_OPEN_API_CONFIG"])
    app = create_service(config)
    app.router.routes.append(bare.route())
    return app

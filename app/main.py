"""The Starlette application factory."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"success": True, "data": {"status": "ok"}})


def create_app(config: Any = None) -> Starlette:
    return Starlette(routes=[Route("/health", health)])

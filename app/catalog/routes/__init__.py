"""The catalog's HTTP operations: public reads first (Starlette tries routes in order)."""

from __future__ import annotations

from app.catalog.routes import admin, categories, videos, vod_callbacks
from app.web.operation import Operation

OPERATIONS: list[Operation] = [
    *videos.OPERATIONS,
    *categories.OPERATIONS,
    *admin.OPERATIONS,
    *vod_callbacks.OPERATIONS,
]

"""HTTP routes, one resource per module; ``OPERATIONS`` lists every endpoint."""

from __future__ import annotations

from . import (
    admin_users,
    admin_videos,
    auth,
    categories,
    health,
    users,
    videos,
    vod_callbacks,
)
from ._api import Call, Operation, operation

# Starlette tries routes in order: the hot public reads go first.
OPERATIONS: list[Operation] = [
    *videos.OPERATIONS,
    *health.OPERATIONS,
    *categories.OPERATIONS,
    *auth.OPERATIONS,
    *users.OPERATIONS,
    *admin_videos.OPERATIONS,
    *admin_users.OPERATIONS,
    *vod_callbacks.OPERATIONS,
]

__all__ = ["OPERATIONS", "Call", "Operation", "operation"]

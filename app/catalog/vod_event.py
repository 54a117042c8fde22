"""``vod_events``: provider callbacks already processed, unique per (provider, event_id)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from luser_db import Field, Model


class VodEventRecord(Model, table="vod_events"):
    id: int = Field(primary_key=True)
    provider: str = ""
    event_id: str = ""
    event_type: str = ""
    media_id: str = ""
    video_id: int | None = None
    payload: dict[str, Any] | None = None
    created_at: datetime | None = None

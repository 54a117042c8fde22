"""``videos``: catalog entries backed by a VOD provider's media."""

from __future__ import annotations

from datetime import datetime

from app.catalog.status import MediaState, VideoStatus
from luser_db import Field, Model


class Video(Model, table="videos", soft_delete=True):
    id: int = Field(primary_key=True)
    category_id: int | None = None
    title: str = ""
    description: str = ""
    cover_url: str = ""
    duration_seconds: int = 0
    provider: str = "tencent"
    media_id: str | None = None
    media_status: str = MediaState.NONE
    status: str = VideoStatus.DRAFT
    preview_seconds: int = 0
    required_level: int = 0
    published_at: datetime | None = None
    deleted_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

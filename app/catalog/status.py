"""Video states, as stored in ``videos`` (the CHECK constraints allow exactly these)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["MediaState", "VideoStatus"]


class VideoStatus(StrEnum):
    """``videos.status``: only ``published`` videos are listed and playable."""

    DRAFT = "draft"
    PROCESSING = "processing"
    PUBLISHED = "published"
    OFFLINE = "offline"


class MediaState(StrEnum):
    """``videos.media_status``: our view of the provider's media (``MediaStatus`` is theirs)."""

    NONE = "none"
    UPLOADING = "uploading"
    READY = "ready"
    FAILED = "failed"

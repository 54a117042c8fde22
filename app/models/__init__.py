"""The service's tables as luser_db models."""

from .category import Category
from .refresh_token import RefreshToken
from .user import User
from .video import Video
from .vod_event import VodEventRecord

__all__ = ["Category", "RefreshToken", "User", "Video", "VodEventRecord"]

"""The luser video-subscription service."""

from .main import create_app

__all__ = ["create_app"]

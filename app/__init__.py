"""The luser video-subscription service.

``create_app`` is imported lazily so that ``luser`` CLI commands which never build
the app (migrate, config, db) do not pay for importing the web stack and the SDKs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.main import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from app.main import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

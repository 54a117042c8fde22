"""The catalog as a feature of the app: its operations (public reads first, since
Starlette tries routes in order). Its VOD provider clients are shared services,
closed with the container."""

from __future__ import annotations

from app.catalog.routes import OPERATIONS
from app.features import FeaturePackage

__all__ = ["feature"]

feature = FeaturePackage("catalog", OPERATIONS)

"""Files the service ships inside its package, so that it runs from any folder."""

from __future__ import annotations

from pathlib import Path

__all__ = ["CONFIG_DIR", "MIGRATIONS_DIR"]

_PACKAGE = Path(__file__).resolve().parent
# The service's config folder: default.toml and one {env}.toml per environment.
CONFIG_DIR = _PACKAGE / "config"
# The service's SQL migrations (luser_db.migrations file format).
MIGRATIONS_DIR = _PACKAGE / "migrations"

"""Every config key works or does not exist: each leaf of the service's schema (the
generic sections and the app's) must be read by some code of the distribution (outside
the schema modules themselves).

A key counts as read when its field name appears in the packages' source as an
attribute (``cfg.server.log_level``) or a string (``"log_level"``). That is a necessary
condition, not proof of an effect (the behaviour tests cover that); what it reliably
catches is a key added to the schema that nothing looks at, the way ``server.debug``,
``database.health_check`` and most of ``[redis]`` once sat there doing nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, Field

from app.settings import AppConfig

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "luser_common", "luser_config", "luser_db")
SCHEMAS = (ROOT / "luser_config" / "schema.py", ROOT / "app" / "settings.py")

# Keys nothing reads yet, on purpose, each with its reason. Keep this short.
NOT_YET_READ = {
    "cache.": "the query cache that reads [cache] is planned (issue 13); keep the section",
    "extensions": "free-form data for the user's own code",
    "env": "set by the loader, read as config.env",
}


def leaf_keys(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, field name) of every leaf; a dict of sections walks the section."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        section = _section_type(field.annotation)
        if section is not None:
            yield from leaf_keys(section, f"{key}.")
        else:
            yield key, name


def _section_type(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = get_args(annotation)
    if args and all(a is str for a in args[:1]) and len(args) == 2:  # dict[str, Section]
        value = args[1]
        if isinstance(value, type) and issubclass(value, BaseModel):
            return value
    return None


@cache
def _source() -> str:
    files = (p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py")) if p not in SCHEMAS)
    return "\n".join(p.read_text(encoding="utf-8") for p in files)


def _is_read(name: str) -> bool:
    # An attribute read (not a method call: ``log.debug(`` is no read of ``debug``) or a
    # quoted name (``getattr``, ``model_dump()[...]``, ``features.enabled("open_api")``).
    word = re.escape(name)
    return re.search(rf"\.{word}\b(?!\s*\()|[\"']{word}[\"']", _source()) is not None


def _allowed(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in NOT_YET_READ)


def unread_keys(model: type[BaseModel]) -> list[str]:
    return [key for key, name in leaf_keys(model) if not _allowed(key) and not _is_read(name)]


def test_every_config_key_is_read_by_some_code() -> None:
    assert unread_keys(AppConfig) == [], "remove these keys or make them work (and test it)"


def test_the_check_fails_on_a_new_unused_key() -> None:
    class Extended(AppConfig):
        frobnication_level_nobody_reads: int = Field(default=0)

    assert unread_keys(Extended) == ["frobnication_level_nobody_reads"]


def test_allowed_exceptions_are_still_in_the_schema() -> None:
    keys = [key for key, _ in leaf_keys(AppConfig)]
    for allowed in NOT_YET_READ:
        assert any(k == allowed or k.startswith(allowed) for k in keys), allowed

"""Which schema this process loads its config into: ``Settings`` or an application's
subclass of it, registered once with ``use_schema``."""

from __future__ import annotations

from typing import TypeVar

from .schema import Settings

__all__ = ["SettingsT", "current_schema", "use_schema"]

SettingsT = TypeVar("SettingsT", bound=Settings)

_schema: type[Settings] = Settings


def use_schema(schema: type[SettingsT]) -> type[SettingsT]:
    """Make ``schema`` (a ``Settings`` subclass) the schema every load uses unless told
    otherwise: ``load_config``, ``init_config``, ``ConfigBuilder``, hot reloads, the
    ``LUSER__...`` variables, ``luser config show`` and ``luser config docs``.

    Returns ``schema``, so it also works as a class decorator. The last call wins.
    """
    if not (isinstance(schema, type) and issubclass(schema, Settings)):
        raise TypeError(f"use_schema() needs a subclass of luser_config.Settings, got {schema!r}")
    global _schema
    _schema = schema
    return schema


def current_schema() -> type[Settings]:
    """The registered schema (``Settings`` until an application registers its own)."""
    return _schema

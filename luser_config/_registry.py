"""Which schema this process loads its config into: ``Settings`` or an application's
subclass of it, registered once with ``use_schema``.

An application whose sections depend on what it registers at run time (one section
per plugin, say) registers a *schema factory* instead: a function returning the
``Settings`` subclass, asked again on every load, so a load sees every section
registered before it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, overload

from .schema import Settings

__all__ = ["SchemaFactory", "SettingsT", "current_schema", "use_schema"]

SettingsT = TypeVar("SettingsT", bound=Settings)
SchemaFactory = Callable[[], type[Settings]]


def _settings() -> type[Settings]:
    return Settings


_factory: SchemaFactory = _settings


def _check(schema: object) -> type[Settings]:
    if not (isinstance(schema, type) and issubclass(schema, Settings)):
        raise TypeError(f"use_schema() needs a subclass of luser_config.Settings, got {schema!r}")
    return schema


@overload
def use_schema(schema: type[SettingsT]) -> type[SettingsT]: ...


@overload
def use_schema(schema: SchemaFactory) -> SchemaFactory: ...


def use_schema(schema: type[SettingsT] | SchemaFactory) -> type[SettingsT] | SchemaFactory:
    """Make ``schema`` (a ``Settings`` subclass, or a function returning one) the schema
    every load uses unless told otherwise: ``load_config``, ``init_config``,
    ``ConfigBuilder``, hot reloads, the ``LUSER__...`` variables, ``luser config show``
    and ``luser config docs``.

    A function is called each time the schema is needed (it should cache its class).
    Returns ``schema``, so it also works as a decorator. The last call wins.
    """
    global _factory
    if isinstance(schema, type):
        fixed = _check(schema)
        _factory = lambda: fixed  # noqa: E731
    elif callable(schema):
        _factory = schema
    else:
        raise TypeError(f"use_schema() needs a subclass of luser_config.Settings, got {schema!r}")
    return schema


def current_schema() -> type[Settings]:
    """The registered schema (``Settings`` until an application registers its own)."""
    return _check(_factory())

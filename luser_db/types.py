"""Field types: the codec registry that maps a Python type to its PostgreSQL column.

Every annotation a model field may carry is resolved through :func:`codec_for`. The
built-in types are registered below exactly as an application registers its own
with :func:`register_type`, so adding a type is one call in one place::

    register_type(Money, pg_type="bigint", to_db=int, from_db=Money)

A :class:`Codec` says which column type a field maps to, which instances a field
accepts on assignment, and how a value crosses the boundary: ``to_db`` runs before a
value is sent, ``from_db`` after a row is read. asyncpg already encodes the built-in
types, so their converters are ``None`` and cost nothing per row. For a codec whose
``pg_type`` is ``jsonb``, ``from_db`` receives the decoded JSON (dict, list, ...).

Containers are not registered: ``list[T]`` and ``dict[K, V]`` are derived from the
annotation (see ``fields.py``). Enums get a codec per enum class on demand (stored
as their ``value`` in a ``text`` column unless ``register_type`` says otherwise).
Registering a type after a model that uses it was declared does not change that
model: models resolve their codecs when the class is created.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from luser_common import ConfigError

__all__ = ["Codec", "check_pg_type", "codec_for", "register_type", "unregister_type"]

# A column type as written in DDL: "bigint", "double precision", "numeric(12, 2)",
# "public.mood", "text[]". Checked because it is pasted into casts (find_by_ids).
_PG_TYPE = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(?:[ .][A-Za-z_][A-Za-z0-9_]*)*"
    r"(?:\(\s*\d+\s*(?:,\s*\d+\s*)?\))?(?:\[\])*"
)


@dataclass(frozen=True, slots=True)
class Codec:
    """How one Python type is stored: column type, accepted instances, converters."""

    py_type: type
    pg_type: str
    accepts: tuple[type, ...]
    to_db: Callable[[Any], Any] | None = None
    from_db: Callable[[Any], Any] | None = None
    builtin: bool = False


_registry: dict[type, Codec] = {}


def check_pg_type(pg_type: str) -> str:
    """``pg_type`` if it reads as a PostgreSQL type name, else ConfigError."""
    if not isinstance(pg_type, str) or not _PG_TYPE.fullmatch(pg_type.strip()):
        raise ConfigError(f"不合法的数据库类型名: {str(pg_type)[:64]!r}")
    return pg_type.strip()


def register_type(
    py_type: type,
    *,
    pg_type: str,
    to_db: Callable[[Any], Any] | None = None,
    from_db: Callable[[Any], Any] | None = None,
    accepts: tuple[type, ...] | None = None,
    replace: bool = False,
) -> Codec:
    """Make ``py_type`` usable as a field annotation; returns its codec.

    ``to_db(value)`` turns a field value into what asyncpg sends for ``pg_type``;
    ``from_db(value)`` turns what asyncpg returns (for ``jsonb``: the decoded JSON)
    back into ``py_type``. ``accepts`` lists the instance types a field takes on
    assignment (default: ``py_type`` and its subclasses). A built-in type cannot be
    replaced; registering a type twice needs ``replace=True``.
    """
    if not isinstance(py_type, type) or py_type in (list, tuple, type(None)):
        raise ConfigError(f"register_type 需要一个类, 不是 {py_type!r}")
    existing = _registry.get(py_type)
    if existing is not None and existing.builtin:
        raise ConfigError(
            f"{py_type.__name__} 是内置类型 (映射为 {existing.pg_type}), 不能重新注册;"
            " 请定义一个子类或新类型再注册"
        )
    if existing is not None and not replace:
        raise ConfigError(
            f"{py_type.__name__} 已注册为 {existing.pg_type}; 如需替换请传 replace=True"
        )
    codec = Codec(py_type, check_pg_type(pg_type), accepts or (py_type,), to_db, from_db)
    _registry[py_type] = codec
    return codec


def unregister_type(py_type: type) -> None:
    """Remove a registration made with ``register_type`` (built-in types stay)."""
    codec = _registry.get(py_type)
    if codec is not None and not codec.builtin:
        del _registry[py_type]


def codec_for(tp: Any) -> Codec | None:
    """The codec for annotation ``tp``; None when it is not a registered type or an enum."""
    codec = _registry.get(tp)
    if codec is None and isinstance(tp, type) and issubclass(tp, enum.Enum):
        return Codec(tp, "text", (tp,), _enum_value, tp)
    return codec


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _builtin(py_type: type, pg_type: str, *accepts: type) -> None:
    _registry[py_type] = Codec(py_type, pg_type, accepts or (py_type,), builtin=True)


# The built-in types: asyncpg encodes and decodes each of them natively.
_builtin(bool, "boolean")
_builtin(int, "bigint")
_builtin(float, "double precision", float, int, Decimal)
_builtin(Decimal, "numeric", Decimal, int)
_builtin(str, "text")
_builtin(bytes, "bytea", bytes, bytearray, memoryview)
_builtin(datetime, "timestamptz")
_builtin(date, "date")
_builtin(time, "time")
_builtin(timedelta, "interval")
_builtin(uuid.UUID, "uuid")
_builtin(dict, "jsonb")

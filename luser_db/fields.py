"""``Field(...)``: per-column options, the Python → PostgreSQL type map, and the descriptor.

The descriptor (``FieldAccessor``) stores values in the instance ``__dict__``
and records assignments in ``_dirty``, which is how ``update()`` knows what
changed. Rows loaded from the database fill ``__dict__`` directly and start clean.
"""

from __future__ import annotations

import enum
import types
import typing
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Union

from luser_common import ValidationError

from ._json import RawJson
from ._sql import check_ident

__all__ = ["MISSING", "Field", "FieldAccessor", "FieldInfo", "JsonAccessor", "accessor_for"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

# Python type -> (PostgreSQL type, accepted instance types).
_TYPES: dict[type, tuple[str, tuple[type, ...]]] = {
    bool: ("boolean", (bool,)),
    int: ("bigint", (int,)),
    float: ("double precision", (float, int, Decimal)),
    Decimal: ("numeric", (Decimal, int)),
    str: ("text", (str,)),
    bytes: ("bytea", (bytes, bytearray, memoryview)),
    datetime: ("timestamptz", (datetime,)),
    date: ("date", (date,)),
    time: ("time", (time,)),
    timedelta: ("interval", (timedelta,)),
    uuid.UUID: ("uuid", (uuid.UUID,)),
    dict: ("jsonb", (dict,)),
}


class FieldInfo:
    """Options of one model column.

    ``primary_key`` (db-generated when the type is int and no value is given),
    ``column`` (the database name when it differs from the attribute), ``default``
    / ``default_factory``, ``generated`` (the database fills it: omitted on insert
    when unset, read back by RETURNING) and ``nullable`` (derived from ``X | None``).
    """

    __slots__ = (
        "accepts",
        "annotation",
        "column",
        "default",
        "default_factory",
        "enum",
        "generated",
        "is_json",
        "model",
        "name",
        "nullable",
        "pg_type",
        "primary_key",
        "to_db",
    )

    def __init__(
        self,
        default: Any = MISSING,
        *,
        primary_key: bool = False,
        column: str | None = None,
        default_factory: Callable[[], Any] | None = None,
        generated: bool | None = None,
        nullable: bool | None = None,
        pg_type: str | None = None,
    ) -> None:
        self.default = default
        self.default_factory = default_factory
        self.primary_key = primary_key
        self.column = column
        self.generated = generated
        self.nullable = nullable
        self.pg_type = pg_type
        self.name = ""
        self.annotation: Any = Any
        self.accepts: tuple[type, ...] = ()
        self.enum: type[enum.Enum] | None = None
        self.to_db: Callable[[Any], Any] | None = None
        self.model: type | None = None
        self.is_json = False

    def __repr__(self) -> str:
        return f"Field({self.name!r}, column={self.column!r}, type={self.pg_type!r})"

    def copy(self) -> FieldInfo:
        # Inherited fields are copied so a mixin's Field is never bound to two models.
        clone = FieldInfo.__new__(FieldInfo)
        for slot in FieldInfo.__slots__:
            setattr(clone, slot, getattr(self, slot))
        return clone

    def bind(self, model: type, name: str, annotation: Any) -> None:
        """Attach to ``model`` as attribute ``name`` with the annotated type."""
        self.model = model
        self.name = name
        self.column = check_ident(self.column or name, name)
        inner, optional = _unwrap_optional(annotation)
        if self.nullable is None:
            self.nullable = optional or (self.default is None)
        if self.generated is None:
            self.generated = self.primary_key and inner is int
        self.annotation = inner
        self._map_type(inner)
        self.is_json = self.pg_type == "jsonb"

    def _map_type(self, tp: Any) -> None:
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            self.enum = tp
            self.accepts = (tp,)
            self.to_db = _enum_value
            self.pg_type = self.pg_type or "text"
        elif origin is list or tp is list:
            args = typing.get_args(tp)
            element = args[0] if args else Any
            self.accepts = (list, tuple)
            if element in _TYPES and element is not dict:
                self.pg_type = self.pg_type or _TYPES[element][0] + "[]"
            else:
                self.pg_type = self.pg_type or "jsonb"
        elif origin is dict:
            self.accepts = (dict,)
            self.pg_type = self.pg_type or "jsonb"
        elif tp in _TYPES:
            pg, self.accepts = _TYPES[tp]
            self.pg_type = self.pg_type or pg
        else:
            self.accepts = ()  # Any / unknown: no type check, stored as given
            self.pg_type = self.pg_type or "jsonb"

    def initial(self) -> Any:
        """The value a new instance starts with (MISSING when there is none)."""
        if self.default_factory is not None:
            return self.default_factory()
        return self.default

    def initial_static(self) -> Any:
        """The default when it is a plain value; ``MISSING`` also when a factory is set."""
        return MISSING if self.default_factory is not None else self.default

    def check(self, value: Any) -> Any:
        """``value`` if it fits this field (enum values are converted), else ValidationError."""
        if value is None:
            if not self.nullable and not self.generated:
                raise ValidationError(f"{self.name} 不能为空", field=self.name)
            return None
        accepts = self.accepts
        cls = type(value)
        if not accepts or cls in accepts:
            return value
        if self.enum is not None:
            try:
                return self.enum(value)
            except ValueError as exc:
                raise ValidationError(f"{self.name} 的取值不合法", field=self.name) from exc
        if cls is bool:
            raise self._type_error()
        if isinstance(value, accepts) and not (
            self.annotation is date and isinstance(value, datetime)
        ):
            return value
        raise self._type_error()

    def _type_error(self) -> ValidationError:
        expected = getattr(self.annotation, "__name__", str(self.annotation))
        return ValidationError(f"{self.name} 的类型应为 {expected}", field=self.name)


def Field(
    default: Any = MISSING,
    *,
    primary_key: bool = False,
    column: str | None = None,
    default_factory: Callable[[], Any] | None = None,
    generated: bool | None = None,
    nullable: bool | None = None,
    pg_type: str | None = None,
) -> Any:
    """Column options for a model field: ``id: int = Field(primary_key=True)``.

    Typed as returning ``Any`` (like ``dataclasses.field``) so that type checkers
    accept it as the default of a field annotated ``int``, ``str``, ...
    """
    return FieldInfo(
        default,
        primary_key=primary_key,
        column=column,
        default_factory=default_factory,
        generated=generated,
        nullable=nullable,
        pg_type=pg_type,
    )


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) != len(typing.get_args(annotation))
        return (args[0] if len(args) == 1 else Any), optional
    return annotation, False


class FieldAccessor:
    """Data descriptor: reads from ``__dict__``, checks and records writes as dirty."""

    __slots__ = ("field", "name")

    def __init__(self, field: FieldInfo) -> None:
        self.field = field
        self.name = field.name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self.field
        try:
            return instance.__dict__[self.name]
        except KeyError:
            value = self.field.initial()
            return None if value is MISSING else value

    def __set__(self, instance: Any, value: Any) -> None:
        data = instance.__dict__
        data[self.name] = self.field.check(value)
        dirty = data.get("_dirty")
        if dirty is None:
            data["_dirty"] = {self.name}
        else:
            dirty.add(self.name)


class JsonAccessor(FieldAccessor):
    """FieldAccessor for jsonb fields: decodes the raw value on first read and keeps it."""

    __slots__ = ()

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self.field
        data = instance.__dict__
        try:
            value = data[self.name]
        except KeyError:
            value = self.field.initial()
            return None if value is MISSING else value
        if value.__class__ is RawJson:
            value = data[self.name] = value.load()
        return value


def accessor_for(field: FieldInfo) -> FieldAccessor:
    return JsonAccessor(field) if field.is_json else FieldAccessor(field)

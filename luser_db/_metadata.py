"""``Metadata``: everything the ORM knows about one model class, plus its compiled SQL.

State lives here, behaviour in ``FieldInfo``/``FieldAccessor`` (peewee's split). The
SQL for the fixed statements (find by id, insert for a column set, update for a
dirty set) is built once per model and shape and cached on this object.
"""

from __future__ import annotations

from typing import Any

from luser_common import ValidationError

from ._datasource import PRIMARY
from ._sql import quote_ident
from .fields import FieldInfo

__all__ = ["KEY_SHAPES", "Metadata"]

# Values that are the shape of a composite key, never a single key's value.
KEY_SHAPES = (tuple, list, dict, set, frozenset)


def _exact_types(field: FieldInfo) -> frozenset[type] | None:
    """Classes a value may have to skip ``FieldInfo.check`` (None: check everything)."""
    if not field.accepts or field.validate is not None:
        return None
    exact = {t for t in field.accepts if t is not bool or field.annotation is bool}
    if field.nullable or field.generated:
        exact.add(type(None))
    return frozenset(exact)


class Metadata:
    """Table name, fields in declaration order, primary key, options and SQL caches."""

    def __init__(
        self,
        model: type,
        table: str,
        *,
        soft_delete: bool = False,
        source: str = PRIMARY,
    ) -> None:
        self.model = model
        self.table = table
        self.qtable = quote_ident(table)
        self.soft_delete = soft_delete
        self.source = source
        self.fields: dict[str, FieldInfo] = {}
        self.by_column: dict[str, FieldInfo] = {}
        # The primary key's fields in declaration order; ``pk`` is set only for a
        # single-field key, so code that assumes one key column cannot misuse a composite.
        self.pk_fields: tuple[FieldInfo, ...] = ()
        self.pk: FieldInfo | None = None
        self.sql: dict[Any, str] = {}

    def add_field(self, field: FieldInfo) -> None:
        self.fields[field.name] = field
        self.by_column[field.column or field.name] = field
        if field.primary_key:
            self.pk_fields += (field,)
            self.pk = field if len(self.pk_fields) == 1 else None

    def finish(self) -> None:
        """Derive the per-model constants once every field is added."""
        fields = list(self.fields.values())
        self.field_list = fields
        self.select_list = ", ".join(self.field_select(f) for f in fields)
        self.qualified_select = ", ".join(
            f"{self.qtable}.{quote_ident(f.column or f.name)}"
            + ("" if f.column == f.name else f" AS {quote_ident(f.name)}")
            for f in fields
        )
        # Per-field tuples read by the hot constructors (Model.__init__, batch_save):
        # attribute lookups on FieldInfo objects add up over 10,000 rows.
        self.init_plan = [(f.name, f, _exact_types(f), f.initial_static()) for f in fields]
        # (name, from_db) for fields whose loaded value is converted (enums, custom codecs).
        self.converters = [(f.name, f.from_db) for f in fields if f.from_db is not None]
        self.to_db = [(f.name, f.to_db) for f in fields if f.to_db is not None]
        self.has_created_at = "created_at" in self.fields
        self.has_updated_at = "updated_at" in self.fields
        if self.soft_delete and "deleted_at" not in self.fields:
            raise TypeError(f"{self.model.__name__}: soft_delete=True needs a deleted_at field")
        self.live_filter = (
            f"{quote_ident(self.fields['deleted_at'].column or 'deleted_at')} IS NULL"
            if self.soft_delete
            else ""
        )

    @staticmethod
    def field_select(field: FieldInfo) -> str:
        """The select item reading ``field`` under its attribute name."""
        column = quote_ident(field.column or field.name)
        return column if field.column == field.name else f"{column} AS {quote_ident(field.name)}"

    def field(self, name: str, what: str = "column") -> FieldInfo:
        """The field for attribute or column ``name``, or ValidationError naming it."""
        found = self.fields.get(name) or self.by_column.get(name)
        if found is None:
            raise ValidationError(
                f"未知的字段: {name[:64]}", field=name[:64] if what == "column" else what
            )
        return found

    def column(self, name: str) -> str:
        """Quoted column for attribute/column ``name`` (checked against the registry)."""
        f = self.field(name)
        return quote_ident(f.column or f.name)

    def require_pk(self) -> FieldInfo:
        """The single primary-key field; TypeError for no key or a composite one."""
        if self.pk is None:
            names = ", ".join(f.name for f in self.require_key())
            raise TypeError(
                f"{self.model.__name__} has a composite primary key ({names});"
                " this operation supports single-field keys only"
            )
        return self.pk

    def require_key(self) -> tuple[FieldInfo, ...]:
        """The primary key's fields (one or more); TypeError when there is none."""
        if not self.pk_fields:
            raise TypeError(f"{self.model.__name__} has no primary key field")
        return self.pk_fields

    def key_where(self, first: int) -> str:
        """``"a" = $first AND "b" = $first+1 ...`` over the primary key's columns."""
        return " AND ".join(
            f"{quote_ident(f.column or f.name)} = ${i}"
            for i, f in enumerate(self.require_key(), first)
        )

    def key_args(self, key: Any) -> list[Any]:
        """The database values of primary key ``key`` (a tuple for a composite key).

        A value of the wrong shape (a scalar for a composite key, a tuple of the wrong
        length, a tuple for a single-field key) is a ValidationError naming the key.
        """
        pk = self.pk
        if pk is not None and not isinstance(key, KEY_SHAPES):  # the common case, kept short
            return [key if key is None or pk.to_db is None else pk.to_db(key)]
        fields = self.require_key()
        if len(fields) == 1:
            if isinstance(key, KEY_SHAPES):
                name = fields[0].name
                raise ValidationError(f"主键 {name} 是单个字段, 应传入一个值", field=name)
            parts: Any = (key,)
        elif isinstance(key, (tuple, list)) and len(key) == len(fields):
            parts = key
        else:
            names = ", ".join(f.name for f in fields)
            raise ValidationError(
                f"{self.model.__name__} 的主键是 ({names}), 应传入 {len(fields)} 个值的元组",
                field=fields[0].name,
            )
        values = []
        for f, value in zip(fields, parts, strict=True):
            if value is not None and f.to_db is not None:
                value = f.to_db(value)
            elif value is None and len(fields) > 1:
                raise ValidationError(f"主键字段 {f.name} 不能为空", field=f.name)
            values.append(value)
        return values

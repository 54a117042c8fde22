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

__all__ = ["Metadata"]


def _exact_types(field: FieldInfo) -> frozenset[type] | None:
    """Classes a value may have to skip ``FieldInfo.check`` (None: check everything)."""
    if not field.accepts:
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
        self.pk: FieldInfo | None = None
        self.sql: dict[Any, str] = {}

    def add_field(self, field: FieldInfo) -> None:
        self.fields[field.name] = field
        self.by_column[field.column or field.name] = field
        if field.primary_key:
            self.pk = field

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
        self.converters = [(f.name, f.enum) for f in fields if f.enum is not None]
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
        if self.pk is None:
            raise TypeError(f"{self.model.__name__} has no primary key field")
        return self.pk

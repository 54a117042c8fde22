"""``Model``: ActiveRecord classes declared with annotations.

``ModelMeta`` only orchestrates (peewee's ``ModelBase``): it collects the
annotated fields (inherited ones copied), builds ``Metadata`` and installs a
``FieldAccessor`` per field. Loaded rows are built with ``object.__new__`` and
a direct ``__dict__`` fill, which keeps per-row Python work to a minimum.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ClassVar, TypeVar

from luser_common import Page, ValidationError

from . import _exec
from . import bulk as bulk_writes
from ._datasource import PRIMARY
from ._gc import bulk
from ._json import RawJson, load
from ._metadata import Metadata
from ._sql import quote_ident, to_dollar
from .bulk import UpsertResult
from .fields import MISSING, FieldAccessor, FieldInfo, accessor_for

__all__ = ["Model", "ModelMeta"]

M = TypeVar("M", bound="Model")

_new = object.__new__
_LIMIT_TAIL = re.compile(r"\blimit\s+(\S+)(\s+offset\s+\S+)?\s*;?\s*$", re.IGNORECASE)


def _now() -> datetime:
    return datetime.now(UTC)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # unresolved forward reference: fall back to the raw annotations
        merged: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            merged.update(getattr(klass, "__annotations__", {}))
        return merged


class ModelMeta(type):
    """Builds ``cls._meta`` from annotations; the root ``Model`` is left alone."""

    def __new__(
        mcs,
        name: str,
        bases: tuple[type, ...],
        ns: dict[str, Any],
        *,
        table: str | None = None,
        soft_delete: bool | None = None,
        source: str | None = None,
    ) -> ModelMeta:
        cls = super().__new__(mcs, name, bases, ns)
        if not bases:  # the root Model itself
            return cls
        parent: Metadata | None = next(
            (m for b in bases if isinstance(m := getattr(b, "_meta", None), Metadata)), None
        )
        meta = Metadata(
            cls,
            table or _snake(name),
            soft_delete=soft_delete
            if soft_delete is not None
            else bool(parent and parent.soft_delete),
            source=source or (parent.source if parent else PRIMARY),
        )
        for attr, annotation in _hints(cls).items():
            if attr.startswith("_") or typing.get_origin(annotation) is ClassVar:
                continue
            meta.add_field(mcs._field_for(cls, attr, annotation))
        meta.finish()
        cls._meta = meta  # type: ignore[attr-defined]
        for f in meta.field_list:
            setattr(cls, f.name, accessor_for(f))
        return cls

    @staticmethod
    def _field_for(cls: type, attr: str, annotation: Any) -> FieldInfo:
        declared = cls.__dict__.get(attr, MISSING)
        if declared is MISSING:
            declared = getattr(cls, attr, MISSING)  # inherited from a base model or mixin
        if isinstance(declared, FieldAccessor):
            declared = declared.field
        if isinstance(declared, FieldInfo):
            # A FieldInfo already bound elsewhere (base model, mixin) is copied, never shared.
            field = declared.copy() if declared.model is not None else declared
        else:
            field = FieldInfo(declared)
        field.bind(cls, attr, annotation)
        return field


class Model(metaclass=ModelMeta):
    """Base class of ActiveRecord models; see docs/orm.md for the tour."""

    _meta: ClassVar[Metadata]

    def __init__(self, **values: Any) -> None:
        data = self.__dict__
        matched = 0
        for name, field, exact, default in self._meta.init_plan:
            if name in values:
                matched += 1
                value = values[name]
                if exact is None or value.__class__ not in exact:
                    value = field.check(value)
                data[name] = value
            elif default is not MISSING:
                data[name] = default
            elif field.default_factory is not None:
                data[name] = field.default_factory()
        if matched != len(values):
            unknown = next(k for k in values if k not in self._meta.fields)
            raise ValidationError(f"未知的字段: {unknown[:64]}", field=unknown[:64])

    # -- loading ---------------------------------------------------------------------

    @classmethod
    def _from_row(cls: type[M], row: Any) -> M:
        """A model from a row that may carry extra columns (raw SQL, select(), joins)."""
        obj = _new(cls)
        data = obj.__dict__
        data.update(row.items())
        fields = cls._meta.fields
        for key, value in data.items():
            # Declared jsonb fields decode on first read; extra columns are decoded now.
            if value.__class__ is RawJson and key not in fields:
                data[key] = value.load()
        for name, enum_type in cls._meta.converters:
            value = data.get(name)
            if value is not None:
                data[name] = enum_type(value)
        return obj

    @classmethod
    def _from_rows(cls: type[M], rows: Sequence[Any], exact: bool = False) -> list[M]:
        """Models from rows; ``exact`` rows hold only the declared fields (the fast path)."""
        if not exact or cls._meta.converters:
            return bulk(rows, lambda: [cls._from_row(r) for r in rows])
        return bulk(rows, lambda: _build_exact(cls, rows))

    # -- attribute helpers -----------------------------------------------------------

    def get(self, name: str, default: Any = None) -> Any:
        """A field or an extra column (join, alias) by name."""
        if name in self._meta.fields:
            return getattr(self, name)
        return load(self.__dict__.get(name, default))

    def set(self: M, name: str, value: Any) -> M:
        """Set a field (checked, marked dirty) or an extra column; returns self."""
        if name in self._meta.fields:
            setattr(self, name, value)
        else:
            self.__dict__[name] = value
        return self

    def to_dict(self, *names: str) -> dict[str, Any]:
        """Fields and extra columns as a plain dict; only the fields in ``names`` if given.

        A named field that was not loaded (``select()`` left it out) reads as its default.
        """
        # This runs once per row of every serialised page, so the common cases stay in C:
        # a copy when the loaded columns are exactly the ones asked for, and a type scan
        # that finds undecoded jsonb without a Python-level loop.
        data = self.__dict__
        if not names:
            out = data.copy()
            out.pop("_dirty", None)
        elif data.keys() == _name_set(names):
            out = data.copy()
        else:
            out = {n: data[n] if n in data else self._unloaded(n) for n in names}
        if RawJson in map(type, out.values()):
            out = {k: v.load() if v.__class__ is RawJson else v for k, v in out.items()}
        return out

    def _unloaded(self, name: str) -> Any:
        return getattr(self, name) if name in self._meta.fields else None

    @property
    def dirty_fields(self) -> frozenset[str]:
        return frozenset(self.__dict__.get("_dirty") or ())

    def __repr__(self) -> str:
        pk = self._meta.pk
        ident = f" {pk.name}={self.__dict__.get(pk.name)!r}" if pk else ""
        return f"<{type(self).__name__}{ident}>"

    def _pk_value(self) -> Any:
        pk = self._meta.require_pk()
        value = self.__dict__.get(pk.name)
        if value is None:
            raise ValidationError(f"{pk.name} 为空, 记录尚未保存", field=pk.name)
        return value

    # -- writes ----------------------------------------------------------------------

    def _insert_values(self, now: datetime) -> tuple[tuple[str, ...], list[Any]]:
        meta = self._meta
        data = self.__dict__
        if meta.has_created_at and data.get("created_at") is None:
            data["created_at"] = now
        if meta.has_updated_at and data.get("updated_at") is None:
            data["updated_at"] = now
        names: list[str] = []
        values: list[Any] = []
        for f in meta.field_list:
            value = data.get(f.name, MISSING)
            if value is MISSING or value is None:
                if f.generated:
                    continue
                if not f.nullable:
                    raise ValidationError(f"{f.name} 不能为空", field=f.name)
                if value is MISSING:
                    continue
            names.append(f.name)
            values.append(f.to_db(value) if f.to_db is not None else value)
        return tuple(names), values

    async def save(self) -> bool:
        """INSERT this instance (RETURNING fills generated columns); True on success."""
        meta = self._meta
        names, values = self._insert_values(_now())
        sql = meta.sql.get(("insert", names))
        if sql is None:
            sql = meta.sql[("insert", names)] = _insert_sql(meta, names, "", full=False)
        row = await _exec.fetchrow(sql, values, meta.source)
        self.__dict__.update(row.items())
        self._after_load()
        return True

    def _after_load(self) -> None:
        data = self.__dict__
        data.pop("_dirty", None)
        for name, enum_type in self._meta.converters:
            if data.get(name) is not None:
                data[name] = enum_type(data[name])

    async def upsert(
        self,
        conflict: str | Sequence[str] | None = None,
        *,
        update: Sequence[str] | None = None,
        do_nothing: bool = False,
    ) -> bool:
        """INSERT ... ON CONFLICT (``conflict``) DO UPDATE/NOTHING; loads what was written.

        ``update`` lists the fields to overwrite (default: every inserted field that
        is not a conflict target). Returns False when DO NOTHING skipped the row.
        """
        meta = self._meta
        targets = (
            (conflict,)
            if isinstance(conflict, str)
            else tuple(conflict or (meta.require_pk().name,))
        )
        target_cols = tuple(meta.column(t) for t in targets)
        names, values = self._insert_values(_now())
        key = ("upsert", names, target_cols, tuple(update or ()), do_nothing)
        sql = meta.sql.get(key)
        if sql is None:
            sql = meta.sql[key] = _insert_sql(
                meta, names, _on_conflict(meta, names, target_cols, update, do_nothing)
            )
        row = await _exec.fetchrow(sql, values, meta.source)
        if row is None:
            return False
        self.__dict__.update(row.items())
        self._after_load()
        return True

    async def update(self) -> bool:
        """UPDATE only the modified fields; False when nothing changed or no row matched."""
        meta = self._meta
        data = self.__dict__
        dirty = data.get("_dirty")
        pk = meta.require_pk()
        if not dirty:
            return False
        if meta.has_updated_at and "updated_at" not in dirty:
            data["updated_at"] = _now()
            dirty.add("updated_at")
        names = tuple(f.name for f in meta.field_list if f.name in dirty and f is not pk)
        if not names:
            return False
        sql = meta.sql.get(("update", names))
        if sql is None:
            sets = ", ".join(f"{meta.column(n)} = ${i}" for i, n in enumerate(names, 1))
            sql = meta.sql[("update", names)] = (
                f"UPDATE {meta.qtable} SET {sets} WHERE {meta.column(pk.name)} = ${len(names) + 1}"
            )
        values = [_db_value(meta, n, data.get(n)) for n in names]
        values.append(self._pk_value())
        count = await _exec.execute(sql, values, meta.source)
        data.pop("_dirty", None)
        return count > 0

    async def delete(self) -> bool:
        """Delete this row (soft delete when the model opts in); True if a row was affected."""
        meta = self._meta
        if meta.soft_delete:
            now = _now()
            count = await self._set_deleted(now)
            if count:
                self.__dict__["deleted_at"] = now
            return count > 0
        return await self.hard_delete()

    async def hard_delete(self) -> bool:
        """DELETE the row even when the model uses soft delete."""
        meta = self._meta
        pk = meta.require_pk()
        sql = f"DELETE FROM {meta.qtable} WHERE {meta.column(pk.name)} = $1"
        return await _exec.execute(sql, [self._pk_value()], meta.source) > 0

    async def restore(self) -> bool:
        """Undo a soft delete."""
        count = await self._set_deleted(None)
        if count:
            self.__dict__["deleted_at"] = None
        return count > 0

    async def _set_deleted(self, value: datetime | None) -> int:
        meta = self._meta
        if not meta.soft_delete:
            raise TypeError(f"{type(self).__name__} does not use soft delete")
        pk = meta.require_pk()
        sets = f"{meta.column('deleted_at')} = $1"
        args: list[Any] = [value]
        if meta.has_updated_at:
            sets += f", {meta.column('updated_at')} = $2"
            args.append(_now())
        cond = "IS NULL" if value is not None else "IS NOT NULL"
        sql = (
            f"UPDATE {meta.qtable} SET {sets} WHERE {meta.column(pk.name)} = ${len(args) + 1}"
            f" AND {meta.column('deleted_at')} {cond}"
        )
        args.append(self._pk_value())
        return await _exec.execute(sql, args, meta.source)

    # -- class-level reads -----------------------------------------------------------

    @classmethod
    async def find_by_id(cls: type[M], id: Any) -> M | None:
        """The row with primary key ``id`` (soft-deleted rows excluded), or None."""
        meta = cls._meta
        sql = meta.sql.get("by_id")
        if sql is None:
            pk = meta.require_pk()
            live = f" AND {meta.live_filter}" if meta.live_filter else ""
            sql = meta.sql["by_id"] = (
                f"SELECT {meta.select_list} FROM {meta.qtable}"
                f" WHERE {meta.column(pk.name)} = $1{live}"
            )
        row = await _exec.fetchrow(sql, (id,), meta.source)
        if row is None:
            return None
        obj = _new(cls)
        obj.__dict__.update(row.items())
        if meta.converters:
            obj._after_load()
        return obj

    @classmethod
    async def find_by_ids(cls: type[M], ids: Iterable[Any]) -> list[M]:
        """Rows for ``ids``, in the order the ids were given (missing ones skipped)."""
        wanted = list(ids)
        if not wanted:
            return []
        meta = cls._meta
        pk = meta.require_pk()
        sql = meta.sql.get("by_ids")
        if sql is None:
            live = f" AND {meta.live_filter}" if meta.live_filter else ""
            sql = meta.sql["by_ids"] = (
                f"SELECT {meta.select_list} FROM {meta.qtable}"
                f" WHERE {meta.column(pk.name)} = ANY($1){live}"
            )
        rows = cls._from_rows(await _exec.fetch(sql, (wanted,), meta.source), exact=True)
        by_id = {r.__dict__[pk.name]: r for r in rows}
        return [by_id[i] for i in wanted if i in by_id]

    @classmethod
    async def find(cls: type[M], sql: str, *params: Any) -> list[M]:
        """Raw SQL (``?`` or ``$n`` placeholders) into models; extra columns stay reachable."""
        rows = await _exec.fetch(to_dollar(sql), params, cls._meta.source, True)
        return cls._from_rows(rows)

    @classmethod
    async def find_first(cls: type[M], sql: str, *params: Any) -> M | None:
        """Like ``find`` but adds LIMIT 1 (unless the SQL ends with a LIMIT) and returns one."""
        row = await _exec.fetchrow(_limit_one(sql), params, cls._meta.source, True)
        return None if row is None else cls._from_row(row)

    @classmethod
    async def paginate(
        cls: type[M], page: int, size: int, select: str, sql_except_select: str, *params: Any
    ) -> Page[M]:
        """JFinal's form: ``paginate(1, 20, "select *", "from users where age > ?", 18)``."""
        from .db import raw_paginate

        return await raw_paginate(
            cls._meta.source, page, size, select, sql_except_select, params, cls._from_rows
        )

    @classmethod
    def query(cls: type[M]) -> QueryBuilder[M]:
        """A new, empty query builder over this model."""
        return QueryBuilder(cls)

    @classmethod
    def with_deleted(cls: type[M]) -> QueryBuilder[M]:
        return QueryBuilder(cls).with_deleted()

    @classmethod
    def only_deleted(cls: type[M]) -> QueryBuilder[M]:
        return QueryBuilder(cls).only_deleted()

    # -- batches ---------------------------------------------------------------------

    @classmethod
    async def batch_save(
        cls: type[M],
        models: Sequence[M] | Sequence[dict[str, Any]] | Sequence[tuple[Any, ...]],
        *,
        columns: Sequence[str] | None = None,
    ) -> int:
        """Insert many rows with COPY; generated columns are not read back. Returns the count.

        Rows are models, dicts or tuples (in ``columns`` order), one shape per batch
        (see luser_db.bulk). Every row must set the same fields; the whole batch is
        checked before any data is sent, and COPY is all or nothing.
        """
        return await bulk_writes.save_rows(cls, models, columns)

    @classmethod
    async def batch_upsert(
        cls: type[M],
        rows: Sequence[M] | Sequence[dict[str, Any]] | Sequence[tuple[Any, ...]],
        conflict: str | Sequence[str],
        update: Sequence[str] | None = None,
        *,
        columns: Sequence[str] | None = None,
    ) -> UpsertResult:
        """COPY ``rows`` into a temp table, then one INSERT ... ON CONFLICT; see luser_db.bulk."""
        return await bulk_writes.batch_upsert(cls, rows, conflict, update, columns=columns)

    @classmethod
    async def batch_update(cls: type[M], models: Sequence[M]) -> int:
        """Update many rows, one executemany per distinct set of changed fields."""
        meta = cls._meta
        pk = meta.require_pk()
        groups: dict[tuple[str, ...], list[M]] = {}
        now = _now()
        for m in models:
            dirty = m.__dict__.get("_dirty")
            if not dirty:
                continue
            if meta.has_updated_at and "updated_at" not in dirty:
                m.__dict__["updated_at"] = now
                dirty.add("updated_at")
            names = tuple(f.name for f in meta.field_list if f.name in dirty and f is not pk)
            groups.setdefault(names, []).append(m)
        total = 0
        for names, group in groups.items():
            sets = ", ".join(f"{meta.column(n)} = ${i}" for i, n in enumerate(names, 1))
            sql = (
                f"UPDATE {meta.qtable} SET {sets} WHERE {meta.column(pk.name)} = ${len(names) + 1}"
            )
            rows = [
                [_db_value(meta, n, m.__dict__.get(n)) for n in names] + [m._pk_value()]
                for m in group
            ]
            await _exec.executemany(sql, rows, meta.source)
            for m in group:
                m.__dict__.pop("_dirty", None)
            total += len(group)
        return total


def _build_exact(cls: type[M], rows: Iterable[Any]) -> list[M]:
    out: list[M] = []
    append = out.append
    for r in rows:
        obj = _new(cls)
        obj.__dict__.update(r.items())
        append(obj)
    return out


def _copy_row(
    data: dict[str, Any],
    plan: Sequence[tuple[str, Any, Any]],
    skipped: Sequence[str],
    stamps: Sequence[str],
    now: datetime,
) -> tuple[Any, ...]:
    for name in stamps:
        if data.get(name) is None:
            data[name] = now
    row = []
    for name, to_db, none_ok in plan:
        value = data.get(name, MISSING)
        if value is None:
            if not none_ok:
                raise ValidationError(f"{name} 不能为空", field=name)
        elif value is MISSING:
            raise ValidationError("batch_save 要求每条记录设置相同的字段", field=name)
        elif to_db is not None:
            value = to_db(value)
        row.append(value)
    for name in skipped:
        if data.get(name) is not None:
            raise ValidationError("batch_save 要求每条记录设置相同的字段", field=name)
    return tuple(row)


def _db_value(meta: Metadata, name: str, value: Any) -> Any:
    convert = meta.fields[name].to_db
    return convert(value) if convert is not None and value is not None else value


def _insert_sql(meta: Metadata, names: tuple[str, ...], tail: str, full: bool = True) -> str:
    cols = ", ".join(meta.column(n) for n in names)
    marks = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    values = f"({cols}) VALUES ({marks})" if names else "DEFAULT VALUES"
    return f"INSERT INTO {meta.qtable} {values}{tail} RETURNING {_returning(meta, names, full)}"


def _returning(meta: Metadata, names: tuple[str, ...], full: bool) -> str:
    # A plain insert reads back only what the database filled in (generated keys,
    # defaults): the values it was sent are already on the instance.
    if full:
        return meta.select_list
    sent = set(names)
    missing = [f for f in meta.field_list if f.name not in sent] or meta.field_list[:1]
    return ", ".join(
        meta.column(f.name) + ("" if f.column == f.name else f" AS {quote_ident(f.name)}")
        for f in missing
    )


def _on_conflict(
    meta: Metadata,
    names: tuple[str, ...],
    targets: tuple[str, ...],
    update: Sequence[str] | None,
    do_nothing: bool,
) -> str:
    head = f" ON CONFLICT ({', '.join(targets)})"
    if do_nothing:
        return head + " DO NOTHING"
    if update:
        chosen = [meta.column(n) for n in update]
    else:
        keep = {"created_at", meta.pk.name if meta.pk else ""}
        chosen = [meta.column(n) for n in names if n not in keep]
        chosen = [c for c in chosen if c not in targets]
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in chosen)
    return head + (f" DO UPDATE SET {sets}" if sets else " DO NOTHING")


@lru_cache(maxsize=1024)
def _name_set(names: tuple[str, ...]) -> frozenset[str]:
    return frozenset(names)


@lru_cache(maxsize=1024)
def _limit_one(sql: str) -> str:
    converted = to_dollar(sql)
    if _LIMIT_TAIL.search(converted):
        return converted
    return converted.rstrip().rstrip(";") + " LIMIT 1"


from .query import QueryBuilder  # noqa: E402  (query.py needs Model defined first)

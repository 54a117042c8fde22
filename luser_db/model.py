"""``Model``: ActiveRecord classes declared with annotations.

``ModelMeta`` only orchestrates (peewee's ``ModelBase``): it collects the
annotated fields (inherited ones copied), builds ``Metadata`` and installs a
``FieldAccessor`` per field. Loaded rows are built with ``object.__new__`` and
a direct ``__dict__`` fill, which keeps per-row Python work to a minimum.
"""

from __future__ import annotations

import re
import sys
import typing
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from luser_common import Page, ValidationError

from . import _exec
from . import bulk as bulk_writes
from ._datasource import PRIMARY
from ._gc import BULK_ROWS, bulk
from ._json import RawJson, load
from ._metadata import KEY_SHAPES, Metadata
from ._sql import Expr, quote_ident, to_dollar
from .bulk import UpsertResult
from .fields import MISSING, FieldAccessor, FieldInfo, accessor_for, write_field

__all__ = ["Model", "ModelMeta"]

M = TypeVar("M", bound="Model")

_new = object.__new__
_NO_SHAPES = frozenset(KEY_SHAPES)
_LIMIT_TAIL = re.compile(r"\blimit\s+(\S+)(\s+offset\s+\S+)?\s*;?\s*$", re.IGNORECASE)


def _now() -> datetime:
    return datetime.now(UTC)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an unresolvable forward reference: resolve the others one by one
        merged: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            module = sys.modules.get(klass.__module__)
            scope = (vars(module) if module else {}, dict(vars(klass)))
            for name, annotation in vars(klass).get("__annotations__", {}).items():
                merged[name] = _resolve(annotation, *scope)
        return merged


def _resolve(annotation: Any, globalns: dict[str, Any], localns: dict[str, Any]) -> Any:
    """A string annotation evaluated like ``get_type_hints`` does; left as is if it fails."""
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, globalns, localns)
    except Exception:
        return annotation


# PEP 681: type checkers synthesise a keyword-only ``__init__`` from the annotations, so
# ``User(nam="x")``, ``User(age="x")`` and a missing required field are type errors.
# ``Field`` is deliberately not a field specifier: a field declared ``= Field(...)`` counts
# as having a default, because its key may be generated or its value filled by the
# database (a checker cannot see ``primary_key=True`` / ``generated=True``).
@typing.dataclass_transform(kw_only_default=True, eq_default=False)
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
        declared = [
            (attr, annotation, mcs._field_for(cls, attr))
            for attr, annotation in _hints(cls).items()
            if not attr.startswith("_") and typing.get_origin(annotation) is not ClassVar
        ]
        # Several primary-key fields form one composite key, in declaration order.
        composite = sum(field.primary_key for _, _, field in declared) > 1
        for attr, annotation, field in declared:
            field.bind(cls, attr, annotation, composite_key=composite)
            meta.add_field(field)
        meta.finish()
        cls._meta = meta  # type: ignore[attr-defined]
        for f in meta.field_list:
            setattr(cls, f.name, accessor_for(f))
        return cls

    @staticmethod
    def _field_for(cls: type, attr: str) -> FieldInfo:
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

    if not TYPE_CHECKING:  # mypy would take any __setattr__ as "every attribute is settable"

        def __setattr__(self, name: str, value: Any) -> None:
            # Field writes are checked and marked dirty here rather than by a data
            # descriptor, so that field reads stay plain instance-dict lookups (see
            # fields.FieldAccessor). Anything else (relations, properties, extra
            # attributes) takes the normal path, descriptors included.
            field = self._meta.fields.get(name)
            if field is None:
                object.__setattr__(self, name, value)
            else:
                write_field(self, field, value)

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
        for name, from_db in cls._meta.converters:
            value = data.get(name)
            if value is not None:
                data[name] = from_db(value)
        return obj

    @classmethod
    def _from_rows(cls: type[M], rows: Sequence[Any], exact: bool = False) -> list[M]:
        """Models from rows; ``exact`` rows hold only the declared fields (the fast path)."""
        if not exact or cls._meta.converters:
            return bulk(rows, lambda: [cls._from_row(r) for r in rows])
        if len(rows) < BULK_ROWS:  # bulk()'s own test, without its two calls (first(), pages)
            return _build_exact(cls, rows)
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
        data = self.__dict__
        ident = "".join(f" {f.name}={data.get(f.name)!r}" for f in self._meta.pk_fields)
        return f"<{type(self).__name__}{ident}>"

    def _key_values(self) -> list[Any]:
        """This row's primary key as database values (every part set, else ValidationError)."""
        data = self.__dict__
        values = []
        for f in self._meta.require_key():
            value = data.get(f.name)
            if value is None:
                raise ValidationError(f"{f.name} 为空, 记录尚未保存", field=f.name)
            values.append(value if f.to_db is None else f.to_db(value))
        return values

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
        plan = _insert_plans.get(meta)
        if plan is None:
            if len(_insert_plans) >= 4096:
                _insert_plans.clear()
            plan = _insert_plans[meta] = tuple(
                (f.name, f.generated, f.nullable, f.to_db) for f in meta.field_list
            )
        for name, generated, nullable, to_db in plan:  # FieldInfo attributes, unpacked once
            value = data.get(name, MISSING)
            if value is MISSING or value is None:
                if generated:
                    continue
                if not nullable:
                    raise ValidationError(f"{name} 不能为空", field=name)
                if value is MISSING:
                    continue
            names.append(name)
            values.append(value if value is None or to_db is None else to_db(value))
        return tuple(names), values

    async def save(self) -> bool:
        """INSERT this instance (RETURNING fills generated columns); True on success."""
        meta = self._meta
        names, values = self._insert_values(_now())
        sql = meta.sql.get(("insert", names))
        if sql is None:
            sql = meta.sql[("insert", names)] = _insert_sql(meta, names, "", full=False)
        row = await _exec.fetchrow(sql, values, meta.source)
        self._load(row)
        return True

    def _load(self, row: Any) -> None:
        """Take the columns of ``row`` (converted by their codecs); the instance is clean."""
        data = self.__dict__
        data.update(row.items())
        data.pop("_dirty", None)
        for name, from_db in self._meta.converters:
            # Only what the row brought: values already on the instance are Python values.
            if row.get(name) is not None:
                data[name] = from_db(data[name])

    async def upsert(
        self,
        conflict: str | Sequence[str] | None = None,
        *,
        update: Sequence[str] | Mapping[str, Any] | None = None,
        do_nothing: bool = False,
    ) -> bool:
        """INSERT ... ON CONFLICT (``conflict``) DO UPDATE/NOTHING; loads what was written.

        ``update`` lists the fields to overwrite (default: every inserted field that
        is not a conflict target), or maps fields to new values / ``Expr`` s
        (``{"n": Expr("orm_counters.n + EXCLUDED.n")}``: the table by its bare name,
        the proposed row as EXCLUDED). Returns False when DO NOTHING skipped the row.
        """
        meta = self._meta
        targets = (
            (conflict,)
            if isinstance(conflict, str)
            else tuple(conflict or (f.name for f in meta.require_key()))
        )
        target_cols = tuple(meta.column(t) for t in targets)
        names, values = self._insert_values(_now())
        if isinstance(update, Mapping):  # values and Exprs: parameters, so not cached
            sql = _insert_sql(meta, names, _on_conflict_set(meta, target_cols, update, values))
        else:
            key = ("upsert", names, target_cols, tuple(update or ()), do_nothing)
            cached = meta.sql.get(key)
            if cached is None:
                cached = meta.sql[key] = _insert_sql(
                    meta, names, _on_conflict(meta, names, target_cols, update, do_nothing)
                )
            sql = cached
        row = await _exec.fetchrow(sql, values, meta.source)
        if row is None:
            return False
        self._load(row)
        return True

    async def update(self, **changes: Any) -> bool:
        """UPDATE only the modified fields; False when nothing changed or no row matched.

        ``changes`` are assigned first; an ``Expr`` value (``n=Expr("n + ?", 1)``) is
        computed by the database and its result read back onto the instance.
        """
        if changes:
            exprs = {k: v for k, v in changes.items() if isinstance(v, Expr)}
            for name, value in changes.items():
                if name not in exprs:
                    setattr(self, name, value)
            if exprs:
                return await self._update_exprs(exprs)
        meta = self._meta
        data = self.__dict__
        dirty = data.get("_dirty")
        meta.require_key()
        if not dirty:
            return False
        if meta.has_updated_at and "updated_at" not in dirty:
            data["updated_at"] = _now()
            dirty.add("updated_at")
        # ((name, to_db) per column, sql) by the set of dirty fields: the field scan and
        # the SQL are made once per set (frozenset() of a small set is one C call).
        dirty_key = frozenset(dirty)
        plan = _update_plans.get((meta, dirty_key))
        if plan is None:
            plan = _update_plans[(meta, dirty_key)] = _update_plan(meta, dirty)
        columns, keys, sql = plan
        if not columns:
            return False
        values = []
        for name, convert in columns:
            value = data.get(name)
            values.append(value if convert is None or value is None else convert(value))
        for name, convert in keys:  # _key_values(), with the key's converters planned
            value = data.get(name)
            if value is None:
                raise ValidationError(f"{name} 为空, 记录尚未保存", field=name)
            values.append(value if convert is None else convert(value))
        # _exec.execute() without its coroutine frame: the status tag is read here.
        status = await _exec.run(_exec.OPS["execute"], sql, values, meta.source)
        data.pop("_dirty", None)
        return _exec.rowcount(status) > 0

    async def _update_exprs(self, exprs: dict[str, Expr]) -> bool:
        meta = self._meta
        data = self.__dict__
        for name in exprs:
            if meta.field(name).primary_key:
                raise ValidationError("不能用表达式修改主键", field=name)
        dirty = data.get("_dirty") or set()
        if meta.has_updated_at and "updated_at" not in dirty and "updated_at" not in exprs:
            data["updated_at"] = _now()
            dirty.add("updated_at")
        names = [
            f.name
            for f in meta.field_list
            if f.name in dirty and not f.primary_key and f.name not in exprs
        ]
        params = [_db_value(meta, n, data.get(n)) for n in names]
        sets = [f"{meta.column(n)} = ${i}" for i, n in enumerate(names, 1)]
        for name, expr in exprs.items():
            sets.append(f"{meta.column(name)} = {expr.render(len(params))}")
            params.extend(expr.params)
        where = meta.key_where(len(params) + 1)
        params += self._key_values()
        back = ", ".join(
            meta.column(n) + ("" if meta.fields[n].column == n else f" AS {quote_ident(n)}")
            for n in exprs
        )
        sql = f"UPDATE {meta.qtable} SET {', '.join(sets)} WHERE {where} RETURNING {back}"
        row = await _exec.fetchrow(sql, params, meta.source)
        data.pop("_dirty", None)
        if row is None:
            return False
        self._load(row)
        return True

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
        sql = f"DELETE FROM {meta.qtable} WHERE {meta.key_where(1)}"
        return await _exec.execute(sql, self._key_values(), meta.source) > 0

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
        sets = f"{meta.column('deleted_at')} = $1"
        args: list[Any] = [value]
        if meta.has_updated_at:
            sets += f", {meta.column('updated_at')} = $2"
            args.append(_now())
        cond = "IS NULL" if value is not None else "IS NOT NULL"
        sql = (
            f"UPDATE {meta.qtable} SET {sets} WHERE {meta.key_where(len(args) + 1)}"
            f" AND {meta.column('deleted_at')} {cond}"
        )
        args += self._key_values()
        return await _exec.execute(sql, args, meta.source)

    # -- class-level reads -----------------------------------------------------------

    @classmethod
    async def find_by_id(cls: type[M], id: Any) -> M | None:
        """The row with primary key ``id`` (soft-deleted rows excluded), or None.

        For a composite key ``id`` is a tuple in the key's declaration order.
        """
        meta = cls._meta
        sql = meta.sql.get("by_id")
        if sql is None:
            live = f" AND {meta.live_filter}" if meta.live_filter else ""
            sql = meta.sql["by_id"] = (
                f"SELECT {meta.select_list} FROM {meta.qtable} WHERE {meta.key_where(1)}{live}"
            )
        row = await _exec.fetchrow(sql, meta.key_args(id), meta.source)
        if row is None:
            return None
        obj = _new(cls)
        if meta.converters:
            obj._load(row)
        else:
            obj.__dict__.update(row.items())
        return obj

    @classmethod
    async def find_by_ids(cls: type[M], ids: Iterable[Any]) -> list[M]:
        """Rows for ``ids``, in the order the ids were given (missing ones skipped).

        For a composite key each id is a tuple in the key's declaration order.
        """
        wanted = list(ids)
        if not wanted:
            return []
        meta = cls._meta
        pk = meta.pk
        # The general path converts and checks each key; a plain single key skips it
        # (the type scan runs in C: no Python call per id).
        if pk is None or pk.to_db is not None or not _NO_SHAPES.isdisjoint(map(type, wanted)):
            return await _find_by_keys(cls, wanted)
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
        return QueryBuilder._of(cls)

    @classmethod
    def using(cls: type[M], source: str) -> QueryBuilder[M]:
        """A query on data source ``source``; ``using("primary")`` never reads a replica."""
        return QueryBuilder._of(cls).using(source)

    @classmethod
    def with_deleted(cls: type[M]) -> QueryBuilder[M]:
        return QueryBuilder._of(cls).with_deleted()

    @classmethod
    def only_deleted(cls: type[M]) -> QueryBuilder[M]:
        return QueryBuilder._of(cls).only_deleted()

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
        meta.require_key()
        groups: dict[tuple[str, ...], list[M]] = {}
        now = _now()
        for m in models:
            dirty = m.__dict__.get("_dirty")
            if not dirty:
                continue
            if meta.has_updated_at and "updated_at" not in dirty:
                m.__dict__["updated_at"] = now
                dirty.add("updated_at")
            names = tuple(f.name for f in meta.field_list if f.name in dirty and not f.primary_key)
            groups.setdefault(names, []).append(m)
        total = 0
        for names, group in groups.items():
            sql = _update_sql(meta, names)
            rows = [
                [_db_value(meta, n, m.__dict__.get(n)) for n in names] + m._key_values()
                for m in group
            ]
            await _exec.executemany(sql, rows, meta.source)
            for m in group:
                m.__dict__.pop("_dirty", None)
            total += len(group)
        return total

    @classmethod
    async def template(cls: type[M], name: str, /, *args: Any, **params: Any) -> list[M]:
        """Run the SQL template ``name`` (see luser_db.templates) into models."""
        from .templates import render_template

        sql, values = render_template(name, *args, **params)
        return cls._from_rows(await _exec.fetch(sql, values, cls._meta.source, True))


async def _find_by_keys(cls: type[M], wanted: list[Any]) -> list[M]:
    """find_by_ids through key_args: one array per key column, joined with unnest."""
    meta = cls._meta
    fields = meta.require_key()
    keys = [tuple(meta.key_args(key)) for key in wanted]
    sql = meta.sql.get("by_keys")
    if sql is None:
        columns = ", ".join(quote_ident(f.column or f.name) for f in fields)
        arrays = ", ".join(f"${i}::{f.pg_type}[]" for i, f in enumerate(fields, 1))
        live = f" AND {meta.live_filter}" if meta.live_filter else ""
        sql = meta.sql["by_keys"] = (
            f"SELECT {meta.select_list} FROM {meta.qtable}"
            f" WHERE ({columns}) IN (SELECT * FROM unnest({arrays})){live}"
        )
    rows = cls._from_rows(await _exec.fetch(sql, list(zip(*keys, strict=True)), meta.source))
    found = {tuple(r._key_values()): r for r in rows}
    return [found[key] for key in keys if key in found]


# update()'s (field names, SQL) per model and set of dirty fields; a model has few such
# sets in practice, and the bound only guards against pathological use.
# _insert_values()'s (name, generated, nullable, to_db) per field, per model (bounded
# like _update_plans: models made at run time, in tests, come and go).
_insert_plans: dict[Metadata, tuple[tuple[str, Any, Any, Any], ...]] = {}

_UpdatePlan = tuple[tuple[tuple[str, Any], ...], tuple[tuple[str, Any], ...], str]
_update_plans: dict[tuple[Metadata, frozenset[str]], _UpdatePlan] = {}


def _update_plan(meta: Metadata, dirty: set[str]) -> _UpdatePlan:
    """update()'s (name, to_db) per column to set and per key column, and its SQL,
    for one set of dirty fields."""
    names = tuple(f.name for f in meta.field_list if f.name in dirty and not f.primary_key)
    sql = meta.sql.get(("update", names))
    if sql is None and names:
        sql = meta.sql[("update", names)] = _update_sql(meta, names)
    if len(_update_plans) >= 4096:
        _update_plans.clear()
    columns = tuple((n, meta.fields[n].to_db) for n in names)
    keys = tuple((f.name, f.to_db) for f in meta.require_key())
    return columns, keys, sql or ""


def _update_sql(meta: Metadata, names: tuple[str, ...]) -> str:
    sets = ", ".join(f"{meta.column(n)} = ${i}" for i, n in enumerate(names, 1))
    return f"UPDATE {meta.qtable} SET {sets} WHERE {meta.key_where(len(names) + 1)}"


def _build_exact(cls: type[M], rows: Iterable[Any]) -> list[M]:
    out: list[M] = []
    append = out.append
    if isinstance(rows, list) and rows and rows[0].__class__ is dict:
        for d in rows:  # rows kept by the query cache: dict-to-dict copies are twice as fast
            obj = _new(cls)
            obj.__dict__.update(d)
            append(obj)
        return out
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
        keep = {"created_at", *(f.name for f in meta.pk_fields)}
        chosen = [meta.column(n) for n in names if n not in keep]
        chosen = [c for c in chosen if c not in targets]
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in chosen)
    return head + (f" DO UPDATE SET {sets}" if sets else " DO NOTHING")


def _on_conflict_set(
    meta: Metadata, targets: tuple[str, ...], update: Mapping[str, Any], values: list[Any]
) -> str:
    """``ON CONFLICT (...) DO UPDATE SET`` from a mapping; parameters appended to ``values``."""
    if not update:
        raise ValidationError("upsert(update=...) 至少需要一个字段", field="update")
    sets = []
    for name, value in update.items():
        column = meta.column(name)
        if isinstance(value, Expr):
            sets.append(f"{column} = {value.render(len(values))}")
            values.extend(value.params)
        else:
            field = meta.field(name)
            value = field.check(value)
            values.append(_db_value(meta, name, value))
            sets.append(f"{column} = ${len(values)}")
    return f" ON CONFLICT ({', '.join(targets)}) DO UPDATE SET {', '.join(sets)}"


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

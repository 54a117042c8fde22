"""Bulk writes: ``batch_save`` of plain rows and ``batch_upsert``, both through binary COPY.

Rows may be models, dicts (one key set for the whole batch) or tuples (in the
order of ``columns``, default every field the database does not generate). Dicts
and tuples never become models: they are turned into COPY records column-wise,
and tuples that need no conversion go to COPY as they are. One batch has one row
shape; anything else is refused before a byte is sent.

``batch_upsert`` copies the rows into a temporary table and merges them with one
``INSERT ... SELECT ... ON CONFLICT (...) DO UPDATE``, all in one transaction; it
reports how many rows were inserted and how many updated (``xmax = 0`` tells a
fresh row from an updated one).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from luser_common import ValidationError

from . import _exec
from ._transaction import transaction

if TYPE_CHECKING:
    from ._metadata import Metadata
    from .model import Model

__all__ = ["UpsertResult", "batch_upsert", "save_rows", "shape_of", "to_records"]

_STAMPS = ("created_at", "updated_at")
_temp_names = itertools.count(1)
# (source, table, conflict columns) already shown to have a matching unique index.
_unique_ok: set[tuple[str, str, tuple[str, ...]]] = set()


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """Rows ``batch_upsert`` inserted and rows it updated."""

    inserted: int
    updated: int


def shape_of(model: type[Model], rows: Sequence[Any]) -> str:
    """``"model"``, ``"dict"`` or ``"tuple"``: the one shape every row has."""
    kinds = set(map(type, rows))  # in C: this runs over every row of every batch
    shapes = {_shape(model, kind) for kind in kinds}
    if len(shapes) != 1:
        raise ValidationError(
            "批量写入的行格式不一致: 同一批只能全是模型、全是 dict 或全是 tuple", field="rows"
        )
    return shapes.pop()


def _shape(model: type[Model], kind: type) -> str:
    if issubclass(kind, model):
        return "model"
    if issubclass(kind, dict):
        return "dict"
    if issubclass(kind, tuple):
        return "tuple"
    raise ValidationError(
        f"批量写入的行必须是 {model.__name__}、dict 或 tuple, 不能是 {kind.__name__}", field="rows"
    )


def to_records(
    model: type[Model], rows: Sequence[Any], columns: Sequence[str] | None, now: datetime
) -> tuple[tuple[str, ...], Sequence[Sequence[Any]]]:
    """(field names, COPY records) for ``rows`` of any one shape; checked before any I/O."""
    shape = shape_of(model, rows)
    meta = model._meta
    if shape == "model":
        if columns is not None:
            raise ValidationError("模型行不需要 columns 参数", field="columns")
        return _model_records(model, rows, now)
    if shape == "dict":
        keys = tuple(rows[0])  # attribute or column names, as the rows spell them
        names = _checked_names(meta, keys)
        getter = itemgetter(*keys)
        records: Sequence[Sequence[Any]] = _dict_records(rows, keys, getter)
    else:
        default = tuple(f.name for f in meta.field_list if not f.generated)
        names = _checked_names(meta, tuple(columns) if columns is not None else default)
        width = len(names)
        if any(len(row) != width for row in rows):
            raise ValidationError(f"批量写入的 tuple 行必须都有 {width} 个值", field="rows")
        records = rows
    return _finish(meta, names, records, now)


def _dict_records(rows: Sequence[Any], keys: tuple[str, ...], getter: Any) -> list[Any]:
    """The rows' values in ``keys`` order; every row must have exactly those keys."""
    if set(map(type, rows)) == {dict} and set(map(len, rows)) == {len(keys)}:
        # Plain dicts of the same size: each has every key (the getter raises KeyError
        # otherwise) and so no other, checked in C rather than per row in Python.
        try:
            values = list(map(getter, rows))
        except KeyError:
            values = None
        if values is not None:
            return values if len(keys) > 1 else [(v,) for v in values]
    first = rows[0].keys()  # dict subclasses (a defaultdict invents missing keys)
    if any(row.keys() != first for row in rows):
        raise ValidationError("批量写入的 dict 行必须有相同的键", field="rows")
    return [getter(r) for r in rows] if len(keys) > 1 else [(getter(r),) for r in rows]


def _checked_names(meta: Metadata, names: tuple[str, ...]) -> tuple[str, ...]:
    if not names:
        raise ValidationError("批量写入至少需要一个字段", field="columns")
    checked = tuple(meta.field(n).name for n in names)
    if len(set(checked)) != len(checked):
        raise ValidationError("批量写入的字段重复", field="columns")
    return checked


def _finish(
    meta: Metadata, names: tuple[str, ...], records: Sequence[Sequence[Any]], now: datetime
) -> tuple[tuple[str, ...], Sequence[Sequence[Any]]]:
    """Apply the fields' database conversions and add missing timestamps, column-wise."""
    converters = [
        (i, meta.fields[n].to_db) for i, n in enumerate(names) if meta.fields[n].to_db is not None
    ]
    stamps = tuple(n for n in _STAMPS if n in meta.fields and n not in names)
    if not converters and not stamps:
        return names, records  # straight to COPY, no per-row Python work
    extra = (now,) * len(stamps)
    out = []
    for record in records:
        row = list(record)
        for i, convert in converters:
            if row[i] is not None:
                row[i] = convert(row[i])  # type: ignore[misc]
        out.append((*row, *extra))
    return names + stamps, out


def _model_records(
    model: type[Model], models: Sequence[Any], now: datetime
) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    from .model import _copy_row

    meta = model._meta
    names, _ = models[0]._insert_values(now)
    chosen = set(names)
    plan = [
        (n, meta.fields[n].to_db, meta.fields[n].nullable and not meta.fields[n].generated)
        for n in names
    ]
    skipped = [f.name for f in meta.field_list if f.name not in chosen]
    stamps = [n for n in _STAMPS if n in meta.fields]
    return names, [_copy_row(m.__dict__, plan, skipped, stamps, now) for m in models]


def _columns(meta: Metadata, names: Sequence[str]) -> list[str]:
    return [meta.fields[n].column or n for n in names]


async def save_rows(
    model: type[Model], rows: Sequence[Any], columns: Sequence[str] | None = None
) -> int:
    """COPY model, dict or tuple rows into the model's table; returns the row count."""
    if not rows:
        return 0
    meta = model._meta
    names, records = to_records(model, rows, columns, datetime.now(UTC))
    schema, _, table = meta.table.rpartition(".")
    return await _copy(table, _columns(meta, names), records, schema or None, meta.source)


async def _copy(
    table: str,
    columns: list[str],
    records: Sequence[Sequence[Any]],
    schema: str | None,
    source: str,
) -> int:
    try:
        return await _exec.copy_records(table, columns, records, schema, source)
    except (TypeError, ValueError, OverflowError) as exc:
        # The driver encodes each value as it streams; a value of the wrong type stops
        # the COPY (nothing is written) with a plain Python error.
        raise ValidationError(f"批量写入的值与列类型不匹配: {type(exc).__name__}") from exc


async def batch_upsert(
    model: type[Model],
    rows: Sequence[Any],
    conflict: str | Sequence[str],
    update: Sequence[str] | None = None,
    *,
    columns: Sequence[str] | None = None,
) -> UpsertResult:
    """Insert ``rows``, updating ``update`` fields where ``conflict`` matches; see module doc."""
    if not rows:
        return UpsertResult(0, 0)
    meta = model._meta
    targets = _checked_names(meta, (conflict,) if isinstance(conflict, str) else tuple(conflict))
    names, records = to_records(model, rows, columns, datetime.now(UTC))
    missing = [t for t in targets if t not in names]
    if missing:
        raise ValidationError(f"冲突字段 {missing[0]} 不在写入的字段中", field="conflict")
    updates = _update_names(meta, names, targets, update)
    _no_duplicate_keys(names, targets, records)
    await _require_unique_index(meta, targets)
    async with transaction(using=meta.source):
        return await _merge(meta, names, records, targets, updates)


def _update_names(
    meta: Metadata, names: tuple[str, ...], targets: tuple[str, ...], update: Sequence[str] | None
) -> tuple[str, ...]:
    if update is None:
        keep = {*targets, "created_at", meta.pk.name if meta.pk else ""}
        return tuple(n for n in names if n not in keep)
    chosen = _checked_names(meta, tuple(update)) if update else ()
    for name in chosen:
        if name not in names:
            raise ValidationError(f"要更新的字段 {name} 不在写入的字段中", field="update")
    return chosen


def _no_duplicate_keys(
    names: tuple[str, ...], targets: tuple[str, ...], records: Sequence[Sequence[Any]]
) -> None:
    # PostgreSQL refuses to update one row twice in a statement; say so before writing.
    key = itemgetter(*(names.index(t) for t in targets))
    if len({key(r) for r in records}) != len(records):
        raise ValidationError("batch_upsert 的行中有重复的冲突键", field="conflict")


async def _require_unique_index(meta: Metadata, targets: tuple[str, ...]) -> None:
    columns = tuple(sorted(meta.fields[t].column or t for t in targets))
    cache_key = (meta.source, meta.table, columns)
    if cache_key in _unique_ok:
        return
    found = await _exec.fetchval(_UNIQUE_SQL, (meta.qtable, list(columns)), meta.source)
    if not found:
        raise ValidationError(
            f"冲突字段 ({', '.join(targets)}) 上没有唯一索引或主键,"
            " 不能用作 batch_upsert 的冲突目标",
            field="conflict",
        )
    _unique_ok.add(cache_key)


# A non-partial unique index (or primary key) whose key columns are exactly the targets.
_UNIQUE_SQL = """SELECT EXISTS (
  SELECT 1 FROM pg_index i
  WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indpred IS NULL
    AND i.indnkeyatts = cardinality($2::text[])
    AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text) FROM pg_attribute a
         WHERE a.attrelid = i.indrelid
           AND a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1])) = $2::text[])"""


async def _merge(
    meta: Metadata,
    names: tuple[str, ...],
    records: Sequence[Sequence[Any]],
    targets: tuple[str, ...],
    updates: tuple[str, ...],
) -> UpsertResult:
    temp = f"_luser_upsert_{next(_temp_names)}"
    cols = ", ".join(meta.column(n) for n in names)
    await _exec.execute(
        f'CREATE TEMP TABLE "{temp}" ON COMMIT DROP'
        f" AS SELECT {cols} FROM {meta.qtable} WITH NO DATA",
        (),
        meta.source,
    )
    await _copy(temp, _columns(meta, names), records, None, meta.source)
    conflict = ", ".join(meta.column(t) for t in targets)
    if updates:
        sets = ", ".join(f"{meta.column(n)} = EXCLUDED.{meta.column(n)}" for n in updates)
        action = f"DO UPDATE SET {sets}"
    else:
        action = "DO NOTHING"
    row = await _exec.fetchrow(
        f'WITH up AS (INSERT INTO {meta.qtable} ({cols}) SELECT {cols} FROM "{temp}"'
        f" ON CONFLICT ({conflict}) {action} RETURNING (xmax = 0) AS inserted)"
        " SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up",
        (),
        meta.source,
    )
    await _exec.execute(f'DROP TABLE "{temp}"', (), meta.source)
    return UpsertResult(int(row[0]), int(row[1]))

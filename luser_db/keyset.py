"""Keyset ("seek") pagination: ``query().order_by(...).keyset(size=50, after=cursor)``.

A page continues after the last row of the previous one (``WHERE (k1, k2) < ($1, $2)``)
instead of skipping ``OFFSET`` rows, so page 10,000 costs what page 1 costs. The
ordering must be unique: the primary key is appended when it is not already in it.

Cursors are opaque strings: the last row's key values plus a fingerprint of the table
and ordering, signed with HMAC-SHA256. A cursor that was edited, or that was made for
another ordering or table, is refused with :class:`InvalidCursor` (422). The signing
key is ``database.cursor_secret`` from luser_config when set, else a random key made
once per process (cursors then stop working after a restart and are not shared
between processes: set the key when several processes serve the same API).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from uuid import UUID

from luser_common import ValidationError

from ._sql import Template

if TYPE_CHECKING:
    from ._metadata import Metadata
    from .query import QueryBuilder

__all__ = ["InvalidCursor", "KeysetPage", "keyset_page", "set_cursor_secret"]

T = TypeVar("T")

# (field name, descending) per ordering key, primary key last.
Keys = tuple[tuple[str, bool], ...]


class InvalidCursor(ValidationError):
    """A keyset cursor that was not issued for this query (tampered, foreign or garbled)."""

    code = "INVALID_CURSOR"
    default_message = "分页游标无效"


@dataclass(frozen=True, slots=True)
class KeysetPage(Generic[T]):
    """``items`` of one keyset page; pass ``next_cursor`` as ``after`` for the next one."""

    items: list[T]
    next_cursor: str | None
    has_more: bool

    def __iter__(self) -> Any:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


# -- the signing key -------------------------------------------------------------------

_secret: bytes | None = None


def set_cursor_secret(secret: str | bytes | None) -> None:
    """Sign cursors with ``secret`` (None: back to the config value or a per-process key)."""
    global _secret
    _secret = secret.encode() if isinstance(secret, str) else secret


def _key() -> bytes:
    global _secret
    if _secret is None:
        configured = _configured_secret()
        _secret = configured.encode() if configured else secrets.token_bytes(32)
    return _secret


def _configured_secret() -> str:
    from ._datasource import database_config

    value = getattr(database_config(), "cursor_secret", None)
    return value.get_secret_value() if value is not None else ""


# -- cursors ---------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fingerprint(meta: Metadata, keys: Keys) -> str:
    spec = meta.table + "|" + ",".join(f"{n} {'desc' if d else 'asc'}" for n, d in keys)
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def encode_cursor(print_: str, values: list[Any]) -> str:
    payload = json.dumps([print_, [_encode_value(v) for v in values]], separators=(",", ":"))
    body = payload.encode()
    sig = hmac.new(_key(), body, hashlib.sha256).digest()[:16]
    return f"{_b64(body)}.{_b64(sig)}"


def decode_cursor(cursor: Any, print_: str, arity: int) -> list[Any]:
    if not isinstance(cursor, str) or cursor.count(".") != 1 or len(cursor) > 4096:
        raise InvalidCursor(field="cursor")
    body_text, sig_text = cursor.split(".")
    try:
        body, sig = _unb64(body_text), _unb64(sig_text)
    except ValueError:
        raise InvalidCursor(field="cursor") from None
    expected = hmac.new(_key(), body, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(sig, expected):
        raise InvalidCursor("分页游标无效或已被篡改", field="cursor")
    found_print, raw = json.loads(body)
    if found_print != print_ or len(raw) != arity:
        raise InvalidCursor("分页游标不属于当前查询的排序", field="cursor")
    return [_decode_value(v) for v in raw]


_TAGS: dict[type, str] = {datetime: "dt", date: "d", time: "t", Decimal: "n", UUID: "u"}
_PARSE: dict[str, Any] = {
    "dt": datetime.fromisoformat,
    "d": date.fromisoformat,
    "t": time.fromisoformat,
    "n": Decimal,
    "u": UUID,
}


def _encode_value(value: Any) -> Any:
    if isinstance(value, Enum):
        value = value.value
    if value is None:
        raise ValidationError("keyset 排序字段的值为空, 请只用 NOT NULL 的列排序", field="order_by")
    if value.__class__ in (int, str, float, bool):
        return value
    tag = _TAGS.get(value.__class__)
    if tag is None:
        raise ValidationError(
            f"keyset 不支持 {type(value).__name__} 类型的排序字段", field="order_by"
        )
    return [tag, value.isoformat() if tag in ("dt", "d", "t") else str(value)]


def _decode_value(raw: Any) -> Any:
    if isinstance(raw, list):
        return _PARSE[raw[0]](raw[1])
    return raw


# -- the query -------------------------------------------------------------------------


def _keys(builder: QueryBuilder[Any]) -> Keys:
    """The ordering as (field, descending), checked, with the primary key's parts appended."""
    meta = builder._meta
    if meta is None:
        raise ValidationError("keyset() 只能用于模型查询", field="order_by")
    if builder._limit is not None or builder._offset is not None or builder._group:
        raise ValidationError("keyset() 不能与 limit/offset/group_by 同用", field="keyset")
    if builder._having or builder._distinct:
        raise ValidationError("keyset() 不能与 having/distinct 同用", field="keyset")
    keys: list[tuple[str, bool]] = []
    for name, desc, nulls in builder._order_keys:
        if nulls is not None:
            raise ValidationError("keyset() 不支持 NULLS FIRST/LAST", field="order_by")
        if "." in name or (name not in meta.fields and name not in meta.by_column):
            raise ValidationError(f"keyset() 只能按模型字段排序: {name[:64]}", field="order_by")
        keys.append((meta.field(name).name, desc))
    # Every part of the primary key (one field or a composite key) makes the order unique.
    ordered = {n for n, _ in keys}
    for part in meta.require_key():
        if part.name not in ordered:
            keys.append((part.name, keys[-1][1] if keys else False))
    return tuple(keys)


def _after_template(meta: Metadata, keys: Keys) -> tuple[Template, tuple[int, ...]]:
    """The ``after the cursor`` condition and which cursor value feeds each placeholder.

    One direction throughout: a row comparison, which a matching index serves. Mixed
    directions: ``(a > $1) OR (a = $1 AND b < $2) ...``.
    """
    cols = [_qualified(meta, n) for n, _ in keys]
    if len({d for _, d in keys}) == 1:
        op = "<" if keys[0][1] else ">"
        pieces = (f"({', '.join(cols)}) {op} (", *([", "] * (len(cols) - 1)), ")")
        return Template(pieces, tuple(range(len(cols))), len(cols)), tuple(range(len(cols)))
    pieces_list: list[str] = ["("]
    feeds: list[int] = []
    for i, (_, desc) in enumerate(keys):
        if i:
            pieces_list[-1] += ") OR ("
        for j in range(i):
            pieces_list[-1] += f"{cols[j]} = "
            pieces_list.append(" AND ")
            feeds.append(j)
        pieces_list[-1] += f"{cols[i]} {'<' if desc else '>'} "
        pieces_list.append("")
        feeds.append(i)
    pieces_list[-1] += ")"
    arity = len(feeds)
    return Template(tuple(pieces_list), tuple(range(arity)), arity), tuple(feeds)


async def keyset_page(builder: QueryBuilder[T], size: int, after: str | None) -> KeysetPage[T]:
    """One page after ``after`` (None: the first page); see the module docstring."""
    from . import _exec
    from .query import MAX_PAGE_SIZE

    if type(size) is not int or not 1 <= size <= MAX_PAGE_SIZE:
        raise ValidationError(f"size 必须是 1 到 {MAX_PAGE_SIZE} 的整数", field="size")
    meta = builder._meta
    keys = _keys(builder)
    print_ = fingerprint(meta, keys)  # type: ignore[arg-type]
    values = decode_cursor(after, print_, len(keys)) if after is not None else None
    shape = _sql_after if values is not None else _sql
    memo = "keyset_after" if values is not None else "keyset"
    sql, params = builder._compiled(memo, lambda: shape(builder, keys))
    # The cursor values and the LIMIT are the last parameters: one SQL text per shape.
    tail: list[Any] = []
    if values is not None:
        tail = [values[i] for i in _after_template(meta, keys)[1]]  # type: ignore[arg-type]
    tail.append(size + 1)
    params[len(params) - len(tail) :] = tail
    rows = await _exec.fetch(sql, params, builder._source)
    more = len(rows) > size
    items = await builder._loaded(rows[:size])
    cursor = None
    if more:
        last = items[-1].__dict__
        missing = [name for name, _ in keys if name not in last]
        if missing:
            raise ValidationError(f"keyset() 需要查询出排序字段 {missing[0]}", field="order_by")
        cursor = encode_cursor(print_, [last[name] for name, _ in keys])
    return KeysetPage(items, cursor, more)


def _qualified(meta: Metadata, name: str) -> str:
    # Qualified, so a joined table with a column of the same name is no ambiguity.
    return f"{meta.qtable}.{meta.column(name)}"


def _sql(builder: QueryBuilder[Any], keys: Keys) -> tuple[str, list[Any]]:
    meta = builder._meta
    assert meta is not None
    order = tuple(_qualified(meta, n) + (" DESC" if d else "") for n, d in keys)
    shaped = builder._clone(order=order)
    return shaped.limit(0).to_sql()


def _sql_after(builder: QueryBuilder[Any], keys: Keys) -> tuple[str, list[Any]]:
    meta = builder._meta
    assert meta is not None
    template, feeds = _after_template(meta, keys)
    where = builder._where
    # The user's conditions are grouped, so an or_where() cannot swallow the cursor's AND.
    entries = ((("AND", where, ()),) if where else ()) + (("AND", template, (None,) * len(feeds)),)
    return _sql(builder._clone(where=entries), keys)

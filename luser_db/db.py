"""``Db``: JFinal's facade for SQL without a model, on the default or a named data source.

``Db.find(...)`` runs on the primary data source; ``Db.use("replica")`` returns
the same facade bound to another one. SQL takes ``?`` or ``$n`` placeholders;
table and column names passed as arguments are checked and quoted.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from luser_common import Page, ValidationError

from . import _exec, cache
from ._datasource import PRIMARY
from ._gc import bulk
from ._json import load
from ._replicas import base_source
from ._sql import quote_ident, to_dollar
from ._transaction import transaction
from .query import MAX_PAGE_SIZE, QueryBuilder
from .record import Record, record_from
from .templates import render_template

__all__ = ["Db", "DbSource", "paginate_sql", "raw_paginate"]


def _records(rows: Sequence[Any]) -> list[Record]:
    return bulk(rows, lambda: [record_from(r) for r in rows])


class DbSource:
    """SQL helpers bound to one data source; ``Db`` is the one for the primary."""

    __slots__ = ("source",)

    def __init__(self, source: str = PRIMARY) -> None:
        self.source = source

    def __repr__(self) -> str:
        return f"<Db {self.source!r}>"

    def use(self, name: str) -> DbSource:
        """The facade for data source ``name`` (``[database.data_sources.<name>]``);
        ``use("primary")`` reads the default source's primary, never a replica."""
        return DbSource(name)

    # -- reads -----------------------------------------------------------------------

    async def find(self, sql: str, *params: Any) -> list[Record]:
        return _records(await _exec.fetch(to_dollar(sql), params, self.source, True))

    async def find_first(self, sql: str, *params: Any) -> Record | None:
        from .model import _limit_one

        row = await _exec.fetchrow(_limit_one(sql), params, self.source, True)
        return None if row is None else record_from(row)

    async def find_by_id(self, table: str, id: Any, pk: str = "id") -> Record | None:
        sql = f"SELECT * FROM {quote_ident(table)} WHERE {quote_ident(pk)} = $1"
        row = await _exec.fetchrow(sql, (id,), self.source)
        return None if row is None else record_from(row)

    async def query_value(self, sql: str, *params: Any) -> Any:
        """The first column of the first row (None when there is no row)."""
        return load(await _exec.fetchval(to_dollar(sql), params, self.source, True))

    async def query_int(self, sql: str, *params: Any) -> int | None:
        value = await self.query_value(sql, *params)
        return None if value is None else int(value)

    async def query_str(self, sql: str, *params: Any) -> str | None:
        value = await self.query_value(sql, *params)
        return None if value is None else str(value)

    async def query_bool(self, sql: str, *params: Any) -> bool | None:
        value = await self.query_value(sql, *params)
        return None if value is None else bool(value)

    async def query_column(self, sql: str, *params: Any) -> list[Any]:
        """The first column of every row."""
        rows = await _exec.fetch(to_dollar(sql), params, self.source, True)
        return [load(r[0]) for r in rows]

    async def paginate(
        self, page: int, size: int, select: str, sql_except_select: str, *params: Any
    ) -> Page[Record]:
        return await raw_paginate(
            self.source, page, size, select, sql_except_select, params, _records
        )

    # -- SQL template files (luser_db.templates) -------------------------------------

    async def template(self, name: str, /, *args: Any, **params: Any) -> list[Record]:
        """Run the SQL template ``name`` (``users.find_adults``); rows as Records."""
        sql, values = render_template(name, *args, **params)
        return _records(await _exec.fetch(sql, values, self.source, True))

    async def template_first(self, name: str, /, *args: Any, **params: Any) -> Record | None:
        """The first row of template ``name`` (only one row is transferred), or None."""
        sql, values = render_template(name, *args, **params)
        row = await _exec.fetchrow(sql, values, self.source, True)
        return None if row is None else record_from(row)

    async def template_paginate(
        self, name: str, page: int, size: int, /, *args: Any, **params: Any
    ) -> Page[Record]:
        """One page of template ``name``; the total is counted over the same rendering."""
        sql, values = render_template(name, *args, **params)
        return await paginate_sql(self.source, page, size, sql, values, _records)

    async def find_by_cache(
        self,
        cache_name: str,
        key: str,
        sql: str,
        *params: Any,
        tables: Sequence[str] | None = None,
        ttl: float | None = None,
    ) -> list[Record]:
        """JFinal's ``findByCache``: ``find(sql, *params)`` kept in cache ``cache_name``
        under ``key`` until ``ttl`` runs out or a table it reads is written. ``tables``
        names them when the SQL hides them (views, functions); by default they are
        parsed from the FROM/JOIN clauses."""
        cache.check_name(cache_name)
        text = to_dollar(sql)
        full_key = cache.key_for(cache_name, key, "find", text, params, self.source)

        async def load() -> list[Record]:
            return _records(await _exec.fetch(text, params, self.source, True))

        rows = await cache.cached(
            cache_name,
            full_key,
            cache.tables_of(text, tables),
            self.source,
            cache.check_ttl(ttl),
            load,
        )
        return [Record(r) for r in rows]  # kept decoded: a hit only copies

    async def paginate_by_cache(
        self,
        cache_name: str,
        key: str,
        page: int,
        size: int,
        select: str,
        sql_except_select: str,
        *params: Any,
        tables: Sequence[str] | None = None,
        ttl: float | None = None,
    ) -> Page[Record]:
        """JFinal's ``paginateByCache``: ``paginate(...)`` through cache ``cache_name``."""
        cache.check_name(cache_name)
        text = to_dollar(f"{select} {sql_except_select}")
        full_key = cache.key_for(cache_name, key, "page", text, params, page, size, self.source)
        kept: list[Any] = []

        async def load() -> tuple[int, list[Any]]:
            result = await raw_paginate(
                self.source, page, size, select, sql_except_select, params, _keep(kept)
            )
            return result.total_row, _records(kept)

        total, rows = await cache.cached(
            cache_name,
            full_key,
            cache.tables_of(text, tables),
            self.source,
            cache.check_ttl(ttl),
            load,
        )
        return Page([Record(r) for r in rows], page, size, total)

    def query(self, table: str) -> QueryBuilder[Record]:
        """A query builder over a table without a model; rows come back as Records."""
        return QueryBuilder(None, table).using(self.source)

    # -- writes ----------------------------------------------------------------------

    async def execute(self, sql: str, *params: Any, tables: Sequence[str] = ()) -> int:
        """Run a statement; returns the number of rows affected.

        ``tables``: what it writes that the query cache cannot parse from the SQL (a
        function's or trigger's targets); their cached reads are evicted at commit."""
        # _exec.execute() without its coroutine frame: the status tag is read here.
        status = await _exec.run(_exec.OPS["execute"], to_dollar(sql), params, self.source, True)
        count = _exec.rowcount(status)
        if tables:
            await cache.invalidate(*tables, source=self.source)
        return count

    async def save(self, table: str, record: Record | dict[str, Any]) -> bool:
        """INSERT ``record``; generated columns (the id) are written back into it."""
        if not record:
            raise ValidationError("记录为空", field=table[:64])
        cols = [quote_ident(c) for c in record]
        marks = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
        sql = f"INSERT INTO {quote_ident(table)} ({', '.join(cols)}) VALUES ({marks}) RETURNING *"
        row = await _exec.fetchrow(sql, list(record.values()), self.source)
        record.update(record_from(row))
        return True

    async def update(self, table: str, record: Record | dict[str, Any], pk: str = "id") -> bool:
        """UPDATE the row whose ``pk`` equals ``record[pk]`` with the record's other columns."""
        if pk not in record:
            raise ValidationError(f"记录缺少主键 {pk}", field=pk)
        names = [c for c in record if c != pk]
        if not names:
            return False
        sets = ", ".join(f"{quote_ident(c)} = ${i}" for i, c in enumerate(names, 1))
        sql = f"UPDATE {quote_ident(table)} SET {sets} WHERE {quote_ident(pk)} = ${len(names) + 1}"
        args = [record[c] for c in names] + [record[pk]]
        return await _exec.execute(sql, args, self.source) > 0

    async def delete_by_id(self, table: str, id: Any, pk: str = "id") -> bool:
        sql = f"DELETE FROM {quote_ident(table)} WHERE {quote_ident(pk)} = $1"
        return await _exec.execute(sql, (id,), self.source) > 0

    async def delete(self, table: str, record: Record | dict[str, Any], pk: str = "id") -> bool:
        if pk not in record:
            raise ValidationError(f"记录缺少主键 {pk}", field=pk)
        return await self.delete_by_id(table, record[pk], pk)

    async def batch(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """executemany: the same statement for every parameter row. Returns len(rows)."""
        if rows:
            await _exec.executemany(to_dollar(sql), rows, self.source, True)
        return len(rows)

    async def batch_save(self, table: str, records: Sequence[Record | dict[str, Any]]) -> int:
        """COPY many records (same columns each) into ``table``. Returns the count."""
        if not records:
            return 0
        columns = list(records[0])
        for name in columns:
            quote_ident(name)
        if any(list(r) != columns for r in records):
            raise ValidationError("batch_save 要求每条记录的列相同", field=table[:64])
        schema, _, name = table.rpartition(".")
        quote_ident(table)
        rows = [tuple(r.values()) for r in records]
        return await _exec.copy_records(name, columns, rows, schema or None, self.source)

    async def copy_records(
        self,
        table: str,
        records: Sequence[Sequence[Any]] | Sequence[Mapping[str, Any]],
        columns: Sequence[str] | None = None,
    ) -> int:
        """COPY ``records`` into ``table`` (``schema.table`` allowed); returns the row count.

        Rows are tuples in ``columns`` order, or mappings (then ``columns`` defaults
        to the first one's keys). One COPY statement on the binary protocol: all rows
        or none. Joins the current transaction; errors are luser errors.
        """
        quote_ident(table)
        if not records:
            return 0
        first = records[0]
        if isinstance(first, Mapping):
            names = list(columns if columns is not None else first)
            rows: Sequence[Sequence[Any]] = [
                tuple(r[c] for c in names)  # type: ignore[call-overload]
                for r in records
            ]
        else:
            names = list(columns) if columns is not None else []
            rows = records  # type: ignore[assignment]
        for name in names:
            quote_ident(name)
        schema, _, name = table.rpartition(".")
        return await _exec.copy_records(name, names or None, rows, schema or None, self.source)

    async def copy_from_query(self, sql: str, *params: Any, output: Any, **options: Any) -> int:
        """COPY the rows of ``sql`` (``?`` or ``$n`` placeholders) to ``output`` -- a path,
        a binary file object or an async callable taking bytes. ``options`` are COPY's
        (``format="csv"``, ``header=True`` ...). Returns the row count."""

        def op(conn: Any, text: str, args: Sequence[Any]) -> Any:
            return conn.copy_from_query(text, *args, output=output, **options)

        status = await _exec.run(op, to_dollar(sql), params, self.source, True)
        return _exec.rowcount(status)

    # -- transactions ----------------------------------------------------------------

    def transaction(self, **options: Any) -> Any:
        """``transaction(...)`` on this data source."""
        return transaction(using=base_source(self.source), **options)

    async def tx(self, fn: Callable[..., Awaitable[Any] | Any], *args: Any, **options: Any) -> bool:
        """Run ``fn(*args)`` in a transaction: returning False or raising rolls back.

        Returns True when committed, False when ``fn`` returned False.
        """
        try:
            async with transaction(using=base_source(self.source), **options):
                result = fn(*args)
                if inspect.isawaitable(result):
                    result = await result
                if result is False:
                    raise _Rollback()
        except _Rollback:
            return False
        return True


def _keep(into: list[Any]) -> Callable[[list[Any]], list[Any]]:
    """A raw_paginate converter that also keeps the raw rows (what a cache stores)."""

    def convert(rows: list[Any]) -> list[Any]:
        into.extend(rows)
        return []

    return convert


class _Rollback(Exception):
    """Raised inside Db.tx to roll back when the function returns False."""


async def raw_paginate(
    source: str,
    page: int,
    size: int,
    select: str,
    sql_except_select: str,
    params: Sequence[Any],
    convert: Callable[[list[Any]], list[Any]],
) -> Page[Any]:
    """JFinal's paginate: count over ``sql_except_select``, then one page of rows."""
    body = to_dollar(f"{select} {sql_except_select}")
    return await paginate_sql(source, page, size, body, params, convert)


async def paginate_sql(
    source: str,
    page: int,
    size: int,
    body: str,
    params: Sequence[Any],
    convert: Callable[[list[Any]], list[Any]],
) -> Page[Any]:
    """Count the rows of ``body`` (SQL with ``$n`` placeholders), then fetch one page."""
    if type(page) is not int or page < 1:
        raise ValidationError("page 必须是正整数", field="page")
    if type(size) is not int or not 1 <= size <= MAX_PAGE_SIZE:
        raise ValidationError(f"size 必须在 1 到 {MAX_PAGE_SIZE} 之间", field="size")
    count_sql = f"SELECT count(*) FROM ({body}) AS _q"
    total = int(await _exec.fetchval(count_sql, params, source, True))
    offset = (page - 1) * size
    if offset >= total:
        return Page([], page, size, total)
    n = len(params)
    rows = await _exec.fetch(
        f"{body} LIMIT ${n + 1} OFFSET ${n + 2}", [*params, size, offset], source, True
    )
    return Page(convert(rows), page, size, total)


Db = DbSource(PRIMARY)

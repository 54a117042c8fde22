"""``QueryBuilder``: an immutable, chainable query over a model (or a bare table).

Every builder method returns a modified copy (peewee's clone-don't-mutate);
clause lists are tuples, so a shared base query never accumulates clauses.
Builder methods do no I/O; only the terminal coroutines (``all``, ``first``,
``count``, ``paginate``, ``update``, ``delete`` ...) talk to the database, and
``to_sql()`` shows what would be sent.

``where`` fragments are SQL written by the developer (with ``?`` or ``$n``
placeholders for values); column names passed as arguments (``where_in``,
``order_by``, ``select``, ``update(**values)``) are checked against the model's
fields or a strict identifier pattern and quoted.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from luser_common import Page, ValidationError

from . import _exec, cache
from ._datasource import PRIMARY
from ._gc import bulk
from ._json import load
from ._replicas import base_source, read_source
from ._sql import Expr, Template, compile_template, quote_ident
from ._transaction import _acquire, current_tx
from .keyset import KeysetPage, keyset_page
from .record import record_from
from .relations import IncludeTree, compile_includes, load_includes

if TYPE_CHECKING:
    from typing import Self

    from ._metadata import Metadata
    from .model import Model

__all__ = ["MAX_PAGE_SIZE", "QueryBuilder"]

T = TypeVar("T")
MAX_PAGE_SIZE = 1000
_COUNTS = ("exact", "estimate", "none")

_ORDER_ITEM = re.compile(
    r"\s*(-)?([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)"
    r"(?:\s+(asc|desc))?(?:\s+nulls\s+(first|last))?\s*",
    re.IGNORECASE,
)
_SELECT_ITEM = re.compile(
    r"\s*([A-Za-z_][A-Za-z0-9_]*(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|\*))?|\*)"
    r"(?:\s+as\s+([A-Za-z_][A-Za-z0-9_]*))?\s*",
    re.IGNORECASE,
)
_TABLE_ITEM = re.compile(
    r"\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)(?:\s+(?:as\s+)?([A-Za-z_][A-Za-z0-9_]*))?\s*",
    re.IGNORECASE,
)

# A where entry: (connector, template-or-group, params); a group is a tuple of entries.
Entry = tuple[str, Any, tuple[Any, ...]]


@lru_cache(maxsize=1024)
def _raw(sql: str) -> Template:
    return Template((sql,), (), 0)


@lru_cache(maxsize=1024)
def _equals(quoted_column: str) -> Template:
    return Template((f"{quoted_column} = ", ""), (0,), 1)


class QueryBuilder(Generic[T]):
    """An immutable SELECT/UPDATE/DELETE description; see the module docstring."""

    def __init__(self, model: type[Model] | None = None, table: str | None = None) -> None:
        meta = model._meta if model is not None else None
        self._model = model
        self._meta: Metadata | None = meta
        self._table = meta.qtable if meta is not None else quote_ident(table or "")
        self._source = meta.source if meta is not None else PRIMARY
        self._select: tuple[str, ...] = ()
        # True while every selected item is a declared field under its own name, so
        # rows still hold only fields and take the fast model constructor.
        self._fields_only = True
        self._distinct = False
        self._joins: tuple[tuple[str, Template, tuple[Any, ...]], ...] = ()
        self._where: tuple[Entry, ...] = ()
        self._group: tuple[str, ...] = ()
        self._having: tuple[Entry, ...] = ()
        self._order: tuple[str, ...] = ()
        # (name, descending, nulls) per order_by key, for keyset(): the SQL text above
        # is what runs, this is what a cursor is made of.
        self._order_keys: tuple[tuple[str, bool, str | None], ...] = ()
        self._include: IncludeTree = ()
        self._limit: int | None = None
        self._offset: int | None = None
        self._lock = ""
        self._deleted = "exclude"
        self._cache: tuple[str, float | None] | None = None

    @classmethod
    def _of(cls, model: type[Model]) -> QueryBuilder[Any]:
        """``QueryBuilder(model)``, copied from a per-model blank: a query is started
        per call (``User.query().where(id=x).first()``), and one dict copy costs less
        than setting every attribute again."""
        blank = _blanks.get(model)
        if blank is None:
            if len(_blanks) >= _BLANKS_MAX:
                _blanks.clear()  # models made at run time (tests): a crude bound
            blank = cls(model).__dict__.copy()
            blank["_steps"] = (model,)  # see _with
            _blanks[model] = blank
        query = object.__new__(cls)
        query.__dict__ = blank.copy()
        return query

    def _with(self, name: str, value: Any, step: tuple[Any, ...] | None = None) -> Self:
        """A copy with one attribute changed (``_clone`` for the per-call chains).

        ``step`` describes what the change does to the SQL text, values aside: a
        builder started by ``_of`` and changed only by such steps carries them in
        ``_steps``, a key for :meth:`_by_shape` that costs nothing to build. Any
        change without a step (every ``_clone``) drops the chain, and the full
        shape is computed instead.
        """
        clone = object.__new__(type(self))
        state = self.__dict__.copy()
        state.pop("_memo", None)
        if step is None:
            state.pop("_steps", None)
        else:
            steps = state.get("_steps")
            if steps is not None:
                state["_steps"] = (steps, step)
        state[name] = value
        clone.__dict__ = state
        return clone

    def _clone(self, **changes: Any) -> Self:
        # peewee's Node.clone: a shallow __dict__ copy. Safe because every clause
        # container is a tuple, rebound (never mutated) by the builder methods.
        clone = object.__new__(type(self))
        state = self.__dict__.copy()
        state.pop("_memo", None)  # compiled SQL belongs to this builder, not its variants
        state.pop("_steps", None)  # see _with
        for name, value in changes.items():
            state["_" + name] = value
        clone.__dict__ = state
        return clone

    # -- identifiers -----------------------------------------------------------------

    def _col(self, name: str, what: str = "column") -> str:
        """A quoted column: known field for unqualified names, strict pattern for ``t.col``."""
        if not isinstance(name, str):
            raise ValidationError("字段名必须是字符串", field=what)
        return _column(self._meta, name)

    # -- where -----------------------------------------------------------------------

    def _entry(
        self, connector: str, condition: Any, params: tuple[Any, ...], eq: dict[str, Any]
    ) -> tuple[Entry, ...]:
        entries: list[Entry] = []
        if callable(condition):
            group = condition(QueryBuilder(self._model, None if self._meta else "_"))
            if not isinstance(group, QueryBuilder):
                raise ValidationError("where(fn) 的 fn 必须返回查询构造器", field="where")
            if group._where:
                entries.append((connector, group._where, ()))
        elif condition is not None:
            if not isinstance(condition, str):
                raise ValidationError("where 条件必须是 SQL 字符串", field="where")
            template = compile_template(condition)
            if template.arity != len(params):
                raise ValidationError(
                    f"where 条件需要 {template.arity} 个参数, 实际 {len(params)} 个", field="where"
                )
            entries.append((connector, template, params))
        elif params:
            raise ValidationError("缺少 where 条件", field="where")
        for name, value in eq.items():
            col = self._col(name)
            if value is None:
                entries.append((connector, _raw(f"{col} IS NULL"), ()))
            else:
                entries.append((connector, _equals(col), (value,)))
        return tuple(entries)

    def where(
        self,
        condition: str | Callable[[QueryBuilder[T]], QueryBuilder[T]] | None = None,
        *params: Any,
        **eq: Any,
    ) -> Self:
        """AND a condition: ``where("age > ?", 18)``, ``where(email=x)``, ``where(lambda q: ..)``.

        The lambda form groups the conditions it adds in parentheses.
        """
        if condition is None and not params and len(eq) == 1:
            # where(id=x), the per-call lookup: _entry()'s general loop, made short.
            ((name, value),) = eq.items()
            if value is not None:
                column = _column(self._meta, name)
                entry = ("AND", _equals(column), (value,))
                return self._with("_where", (*self._where, entry), ("=", column))
        return self._with("_where", self._where + self._entry("AND", condition, params, eq))

    def or_where(
        self,
        condition: str | Callable[[QueryBuilder[T]], QueryBuilder[T]] | None = None,
        *params: Any,
        **eq: Any,
    ) -> Self:
        """OR a condition onto everything before it."""
        return self._clone(where=self._where + self._entry("OR", condition, params, eq))

    def _add(self, sql: str, *params: Any) -> Self:
        arity = len(params)
        pieces = sql.split("\0")
        template = Template(tuple(pieces), tuple(range(arity)), arity)
        return self._clone(where=(*self._where, ("AND", template, params)))

    def where_in(self, column: str, values: Sequence[Any]) -> Self:
        """``column = ANY($n)``; an empty list matches nothing."""
        col = self._col(column)
        values = list(values)
        if not values:
            return self._clone(where=(*self._where, ("AND", _raw("FALSE"), ())))
        return self._add(f"{col} = ANY(\0)", values)

    def where_not_in(self, column: str, values: Sequence[Any]) -> Self:
        """``column <> ALL($n)``; an empty list matches everything."""
        col = self._col(column)
        values = list(values)
        if not values:
            return self._clone()
        return self._add(f"{col} <> ALL(\0)", values)

    def where_like(self, column: str, pattern: str, *, case_insensitive: bool = False) -> Self:
        op = "ILIKE" if case_insensitive else "LIKE"
        return self._add(f"{self._col(column)} {op} \0", pattern)

    def where_between(self, column: str, low: Any, high: Any) -> Self:
        return self._add(f"{self._col(column)} BETWEEN \0 AND \0", low, high)

    def where_null(self, column: str) -> Self:
        return self._clone(where=(*self._where, ("AND", _raw(f"{self._col(column)} IS NULL"), ())))

    def where_not_null(self, column: str) -> Self:
        return self._clone(
            where=(*self._where, ("AND", _raw(f"{self._col(column)} IS NOT NULL"), ()))
        )

    # -- shape -----------------------------------------------------------------------

    def select(self, *columns: str) -> Self:
        """Columns (``name``, ``t.name``, ``name as alias``, ``t.*``) instead of the fields."""
        if not all(isinstance(c, str) for c in columns):
            raise ValidationError("非法的查询列", field="select")
        items, fields_only = _compile_select(self._meta, columns)
        return self._clone(
            select=self._select + items, fields_only=self._fields_only and fields_only
        )

    def select_raw(self, sql: str) -> Self:
        """A select list written by the developer (expressions, aggregates); never user input."""
        return self._clone(select=(*self._select, sql), fields_only=False)

    def distinct(self) -> Self:
        return self._clone(distinct=True)

    def join(self, table: str, on: str, *params: Any) -> Self:
        return self._join("JOIN", table, on, params)

    def left_join(self, table: str, on: str, *params: Any) -> Self:
        return self._join("LEFT JOIN", table, on, params)

    def _join(self, kind: str, table: str, on: str, params: tuple[Any, ...]) -> Self:
        m = _TABLE_ITEM.fullmatch(table)
        if not m:
            raise ValidationError("非法的表名", field="join")
        sql = quote_ident(m.group(1)) + (f" {quote_ident(m.group(2))}" if m.group(2) else "")
        template = compile_template(on)
        if template.arity != len(params):
            raise ValidationError("join 条件的参数个数不匹配", field="join")
        return self._clone(joins=(*self._joins, (f"{kind} {sql} ON ", template, params)))

    def group_by(self, *columns: str) -> Self:
        cols = tuple(self._col(c.strip()) for spec in columns for c in spec.split(","))
        return self._clone(group=self._group + cols)

    def having(self, condition: str, *params: Any) -> Self:
        template = compile_template(condition)
        if template.arity != len(params):
            raise ValidationError("having 条件的参数个数不匹配", field="having")
        return self._clone(having=(*self._having, ("AND", template, params)))

    def order_by(self, *keys: str) -> Self:
        """``order_by("id desc", "-age", "name asc nulls last")``; keys are checked."""
        items = []
        order_keys = []
        for spec in keys:
            if not isinstance(spec, str):
                raise ValidationError("非法的排序字段", field="order_by")
            for name, suffix in _parse_order(spec):
                items.append(self._order_col(name) + suffix)
                order_keys.append(_order_key(name, suffix))
        return self._clone(
            order=self._order + tuple(items), order_keys=self._order_keys + tuple(order_keys)
        )

    def _order_col(self, name: str) -> str:
        try:
            return self._col(name, "order_by")
        except ValidationError:
            aliases = {s.rsplit(" AS ", 1)[1] for s in self._select if " AS " in s}
            if quote_ident(name) in aliases:
                return quote_ident(name)
            raise ValidationError(f"未知的排序字段: {name[:64]}", field="order_by") from None

    def limit(self, n: int) -> Self:
        return self._with("_limit", _non_negative(n, "limit"), ("limit",))

    def offset(self, n: int) -> Self:
        return self._with("_offset", _non_negative(n, "offset"), ("offset",))

    def for_update(
        self, *, nowait: bool = False, skip_locked: bool = False, of: str | None = None
    ) -> Self:
        """Lock the selected rows (use inside ``transaction()``)."""
        lock = " FOR UPDATE"
        if of:
            lock += f" OF {quote_ident(of)}"
        if nowait:
            lock += " NOWAIT"
        elif skip_locked:
            lock += " SKIP LOCKED"
        return self._with("_lock", lock, ("lock", lock))

    def using(self, source: str) -> Self:
        """Run against data source ``source`` (``[database.data_sources.<name>]``);
        ``"primary"`` (or ``"<name>:primary"``) reads that source's primary, never a replica."""
        return self._clone(source=source)

    def include(self, *relations: str) -> Self:
        """Eager-load relations (``"author"``, ``"comments.author"``): one query per path.

        Checked now, against the model's declared relations; see luser_db.relations.
        """
        if self._model is None:
            raise ValidationError("include() 只能用于模型查询", field="include")
        return self._clone(include=compile_includes(self._model, self._include, relations))

    def cache(self, name: str, ttl: float | None = None) -> Self:
        """Serve ``all``/``first``/``count``/``paginate`` from the query cache ``name``
        for up to ``ttl`` seconds (``cache.default_ttl_seconds``); any committed write
        to a table this query reads evicts it first. See ``luser_db.cache``."""
        cache.check_name(name)
        if ttl is not None:
            cache.check_ttl(ttl)
        return self._clone(cache=(name, ttl))

    async def _cached(self, kind: str, sql: str, params: list[Any], load: Any) -> Any:
        assert self._cache is not None
        name, ttl = self._cache
        # The entry key and tables are kept with the compiled SQL: a cached query
        # defined once answers a hit without hashing anything again.
        memo = self.__dict__.setdefault("_memo", {})
        kept = memo.get("cache " + kind) if kind in ("all", "count") else None
        if kept is None:
            key = cache.key_for(name, None, kind, sql, params, self._source)
            kept = (key, cache.tables_of(sql))
            if kind in ("all", "count"):
                memo["cache " + kind] = kept
        return await cache.cached(name, kept[0], kept[1], self._source, cache.check_ttl(ttl), load)

    def with_deleted(self) -> Self:
        """Include soft-deleted rows."""
        return self._clone(deleted="with")

    def only_deleted(self) -> Self:
        """Only soft-deleted rows."""
        return self._clone(deleted="only")

    # -- compiling -------------------------------------------------------------------

    def _soft_filter(self) -> str:
        meta = self._meta
        if meta is None or not meta.soft_delete or self._deleted == "with":
            return ""
        if self._deleted == "only":
            return meta.live_filter.replace("IS NULL", "IS NOT NULL")
        return meta.live_filter

    def _where_sql(self, params: list[Any]) -> str:
        parts = []
        body = _render(self._where, params)
        if body:
            parts.append(f"({body})" if len(self._where) > 1 and self._soft_filter() else body)
        soft = self._soft_filter()
        if soft:
            if self._joins:
                soft = f"{self._table}.{soft}"
            parts.append(soft)
        return " WHERE " + " AND ".join(parts) if parts else ""

    def _from_sql(self, params: list[Any]) -> str:
        sql = f" FROM {self._table}"
        for head, template, args in self._joins:
            sql += f" {head}{template.render(len(params))}"
            params.extend(args)
        return sql

    def _select_list(self) -> str:
        if self._select:
            return ", ".join(self._select)
        if self._meta is not None:
            return self._meta.qualified_select if self._joins else self._meta.select_list
        return "*"

    def _body(self, params: list[Any], *, order: bool = True, window: bool = True) -> str:
        sql = self._from_sql(params) + self._where_sql(params)
        if self._group:
            sql += " GROUP BY " + ", ".join(self._group)
        if self._having:
            sql += " HAVING " + _render(self._having, params)
        if order and self._order:
            sql += " ORDER BY " + ", ".join(self._order)
        if window:
            if self._limit is not None:
                params.append(self._limit)
                sql += f" LIMIT ${len(params)}"
            if self._offset is not None:
                params.append(self._offset)
                sql += f" OFFSET ${len(params)}"
        return sql

    def to_sql(self) -> tuple[str, list[Any]]:
        """The SELECT this builder runs, as ``(sql, params)``, without touching a database."""
        params: list[Any] = []
        head = "SELECT DISTINCT " if self._distinct else "SELECT "
        sql = head + self._select_list() + self._body(params) + self._lock
        return sql, params

    def _count_sql(self) -> tuple[str, list[Any]]:
        params: list[Any] = []
        if self._distinct or self._group or self._limit is not None or self._offset is not None:
            inner = ("SELECT DISTINCT " if self._distinct else "SELECT ") + self._select_list()
            return f"SELECT count(*) FROM ({inner}{self._body(params, order=False)}) AS _q", params
        return "SELECT count(*)" + self._body(params, order=False), params

    def _compiled(
        self, kind: str, build: Callable[[], tuple[str, list[Any]]]
    ) -> tuple[str, list[Any]]:
        """``build()``'s SQL, kept on this builder: it is immutable, so a query defined
        once (a module constant, say) and run on every request is rendered only once."""
        memo = self.__dict__.get("_memo")
        if memo is None:
            memo = self.__dict__["_memo"] = {}
        found = memo.get(kind)
        if found is None:
            found = memo[kind] = self._by_shape(kind, build)
        return found[0], list(found[1])

    def _by_shape(
        self, kind: str, build: Callable[[], tuple[str, list[Any]]]
    ) -> tuple[str, list[Any]]:
        """``build()``, reusing the SQL of an earlier builder of the same shape.

        A builder made per call (``User.query().where(id=x).first()``) differs from
        the last one only in its parameter values, and the SQL text depends on none
        of them: templates render from the parameter offset alone, and LIMIT/OFFSET
        are parameters. So the text is cached under everything it is made of (kind,
        table and model, select, where templates and their arities, grouping,
        order, which of limit/offset are set, lock, soft-delete mode) and only the
        values are gathered again. Joins and HAVING carry parameters of their own:
        such builders keep the per-builder memo only.
        """
        if kind not in _SHAPED_KINDS or self._joins or self._having:
            return build()
        # "page" SQL ends in LIMIT/OFFSET parameters that paginate() appends itself.
        windowed = kind != "page"
        limited = kind == "first" or (windowed and self._limit is not None)
        offset = windowed and self._offset is not None
        steps = self.__dict__.get("_steps")
        key = (
            (kind, steps, limited, offset)
            if steps is not None
            else (
                kind,
                self._table,
                self._meta,
                self._select,
                self._distinct,
                _shape(self._where),
                self._group,
                self._order,
                limited,
                offset,
                self._lock,
                self._deleted,
            )
        )
        sql = _shapes.get(key)
        if sql is None:
            built = build()
            if len(_shapes) >= _SHAPES_MAX:
                _shapes.clear()  # a crude bound; real programs have a few hundred shapes
            _shapes[key] = built[0]
            return built
        params: list[Any] = []
        _gather(self._where, params)  # the order _render() numbers them in
        if limited:
            params.append(1 if kind == "first" else self._limit)
        if offset:
            params.append(self._offset)
        return sql, params

    def _page_sql(self) -> tuple[str, list[Any]]:
        # LIMIT and OFFSET are the last two parameters: one SQL text serves every page.
        sql, params = self._clone(limit=0, offset=0).to_sql()
        return sql, params[:-2]

    # -- terminals -------------------------------------------------------------------

    def _rows(self, rows: list[Any]) -> list[Any]:
        if self._model is not None:
            return self._model._from_rows(rows, exact=self._fields_only and not self._joins)
        return bulk(rows, lambda: [record_from(r) for r in rows])

    async def _loaded(self, rows: list[Any]) -> list[Any]:
        """``_rows`` plus the included relations."""
        items = self._rows(rows)
        if self._include:
            await load_includes(self._model, items, self._include, self._source)  # type: ignore[arg-type]
        return items

    async def all(self) -> list[T]:
        sql, params = self._compiled("select", self.to_sql)
        if self._cache is not None:
            load = lambda: _exec.fetch(sql, params, self._source)  # noqa: E731
            rows = await self._cached("all", sql, params, load)
        else:
            rows = await _exec.fetch(sql, params, self._source)
        if self._include:
            return await self._loaded(rows)
        return self._rows(rows)

    def __await__(self) -> Generator[Any, None, list[T]]:
        return self.all().__await__()

    async def first(self) -> T | None:
        sql, params = self._compiled("first", lambda: self.limit(1).to_sql())
        if self._cache is not None:
            load = lambda: _exec.fetchrow(sql, params, self._source)  # noqa: E731
            row = await self._cached("first", sql, params, load)
        else:
            row = await _exec.fetchrow(sql, params, self._source)
        if row is None:
            return None
        if self._include:
            return (await self._loaded([row]))[0]
        return self._one(row)  # _loaded() without its coroutine: nothing to include

    def _one(self, row: Any) -> Any:
        """``_rows([row])[0]``: the per-call ``first()`` of a plain model (only declared
        fields, no converters) skips the list and _from_rows's checks and loop."""
        model = self._plain_model()
        if model is None:
            return self._rows([row])[0]
        obj = object.__new__(model)
        obj.__dict__.update(row.items())  # _build_exact's step; cached rows are dicts
        return obj

    async def count(self) -> int:
        sql, params = self._compiled("count", self._count_sql)
        if self._cache is not None:
            load = lambda: _exec.fetchval(sql, params, self._source)  # noqa: E731
            return int(await self._cached("count", sql, params, load))
        return int(await _exec.fetchval(sql, params, self._source))

    async def exists(self) -> bool:
        params: list[Any] = []
        sql = f"SELECT EXISTS(SELECT 1{self._body(params, order=False)})"
        return bool(await _exec.fetchval(sql, params, self._source))

    async def paginate(self, page: int, size: int, *, count: str = "exact") -> Page[T]:
        """One page plus totals.

        ``count``: ``"exact"`` runs ``count(*)`` (the data query is skipped when the page
        is past the end); ``"estimate"`` asks the planner instead (cheap on big tables,
        approximate); ``"none"`` counts nothing. With the last two, ``total_row`` is exact
        on the last page and never less than the rows seen plus one while more exist, so
        ``is_last_page`` is always right.
        """
        page = _positive(page, "page")
        size = _positive(size, "size")
        if size > MAX_PAGE_SIZE:
            raise ValidationError(f"size 不能超过 {MAX_PAGE_SIZE}", field="size")
        if count not in _COUNTS:
            raise ValidationError("count 必须是 exact、estimate 或 none", field="count")
        if self._cache is not None and count == "exact":
            sql, params = self._compiled("page", self._page_sql)
            load = lambda: self._clone(cache=None)._page_rows(page, size)  # noqa: E731
            total, rows = await self._cached("page", sql, [*params, page, size], load)
            return Page(await self._loaded(rows), page, size, total)
        offset = (page - 1) * size
        if count != "exact":
            return await self._page_uncounted(page, size, offset, count == "estimate")
        total = await self.count()
        if offset >= total:
            return Page([], page, size, total)
        sql, params = self._compiled("page", self._page_sql)
        params += (size, offset)
        items = await self._loaded(await _exec.fetch(sql, params, self._source))
        return Page(items, page, size, total)

    async def _page_uncounted(self, page: int, size: int, offset: int, estimate: bool) -> Page[T]:
        # One row more than the page tells whether another page follows.
        sql, params = self._compiled("page", self._page_sql)
        params += (size + 1, offset)
        rows = await _exec.fetch(sql, params, self._source)
        more = len(rows) > size
        items = await self._loaded(rows[:size])
        seen = offset + len(items) if items else 0
        total = seen + 1 if more else seen
        if estimate and (more or not items):
            total = max(total, await self.estimate_count())
        return Page(items, page, size, total)

    async def estimate_count(self) -> int:
        """The planner's row estimate for this query (no rows are read; needs ANALYZE stats)."""
        sql, params = self._compiled("estimate", self._estimate_sql)
        plan = load(await _exec.fetchval(sql, params, self._source))
        if isinstance(plan, str | bytes):
            plan = json.loads(plan)
        return int(plan[0]["Plan"]["Plan Rows"])

    def _estimate_sql(self) -> tuple[str, list[Any]]:
        sql, params = self._clone(order=(), limit=None, offset=None, lock="").to_sql()
        return "EXPLAIN (FORMAT JSON) " + sql, params

    async def keyset(self, size: int = 50, after: str | None = None) -> KeysetPage[T]:
        """The ``size`` rows after cursor ``after`` in this ordering; see luser_db.keyset."""
        return await keyset_page(self, size, after)

    async def _page_rows(self, page: int, size: int) -> tuple[int, list[Any]]:
        """(total, the page's raw rows): what a cached ``paginate`` keeps."""
        total = await self.count()
        offset = (page - 1) * size
        if offset >= total:
            return total, []
        sql, params = self._compiled("page", self._page_sql)
        return total, await _exec.fetch(sql, [*params, size, offset], self._source)

    async def pluck(self, column: str) -> list[Any]:
        """Values of one column."""
        sql, params = self._clone(select=(self._col(column),)).to_sql()
        rows = await _exec.fetch(sql, params, self._source)
        return [load(r[0]) for r in rows]

    async def _aggregate(self, fn: str, column: str) -> Any:
        params: list[Any] = []
        sql = f"SELECT {fn}({self._col(column)}){self._body(params, order=False)}"
        return load(await _exec.fetchval(sql, params, self._source))

    async def sum(self, column: str) -> Any:
        return await self._aggregate("sum", column)

    async def avg(self, column: str) -> Any:
        return await self._aggregate("avg", column)

    async def min(self, column: str) -> Any:
        return await self._aggregate("min", column)

    async def max(self, column: str) -> Any:
        return await self._aggregate("max", column)

    def _writable(self, what: str) -> None:
        if self._joins or self._limit is not None or self._offset is not None or self._group:
            raise ValidationError(f"{what}() 不支持 join/limit/offset/group_by", field=what)

    async def update(self, **values: Any) -> int:
        """UPDATE the matching rows; values are checked against the fields, an ``Expr``
        is computed by the database (``n=Expr("n + ?", 1)``). Returns the count."""
        self._writable("update")
        if not values:
            raise ValidationError("update() 至少需要一个字段", field="update")
        meta = self._meta
        params: list[Any] = []
        sets = []
        if meta is not None and meta.has_updated_at and "updated_at" not in values:
            values["updated_at"] = datetime.now(UTC)
        for name, value in values.items():
            col = self._col(name)
            if isinstance(value, Expr):  # e.g. balance = balance + $n, computed in SQL
                sets.append(f"{col} = {value.render(len(params))}")
                params.extend(value.params)
                continue
            if meta is not None:
                field = meta.field(name)
                value = field.check(value)
                if field.to_db is not None and value is not None:
                    value = field.to_db(value)
            params.append(value)
            sets.append(f"{col} = ${len(params)}")
        sql = f"UPDATE {self._table} SET {', '.join(sets)}{self._where_sql(params)}"
        return await _exec.execute(sql, params, self._source)

    async def delete(self) -> int:
        """DELETE the matching rows (soft delete when the model opts in). Returns the count."""
        self._writable("delete")
        meta = self._meta
        if meta is not None and meta.soft_delete:
            return await self._clone(deleted="exclude").update(deleted_at=datetime.now(UTC))
        params: list[Any] = []
        sql = f"DELETE FROM {self._table}{self._where_sql(params)}"
        return await _exec.execute(sql, params, self._source)

    async def iterate(self, batch: int = 1000) -> AsyncGenerator[T, None]:
        """Stream rows through a server-side cursor, ``batch`` at a time (bounded memory).

        Inside ``transaction()`` the cursor uses that transaction; otherwise it holds
        its own connection and read-only transaction until the loop ends. Break out
        early with ``contextlib.aclosing`` to return the connection at once.
        """
        batch = _positive(batch, "batch")
        sql, params = self.to_sql()
        if _exec.listeners:
            for listener in _exec.listeners:
                listener(sql)
        # Plain models are built one per row, as they are yielded, never a batch ahead:
        # the consumer has dropped the previous ones by the time the cyclic GC runs,
        # which then finds nothing young to promote. A whole batch built in one go was
        # alive at every collection and, promoted batch after batch, kept triggering
        # full collections: about a tenth of a million-row stream.
        model = self._plain_model()
        new = object.__new__
        async with self._cursor_connection() as conn:
            async for rows in self._chunks(conn, sql, params, batch):
                if model is None:  # includes, codecs, extra columns, a bare table
                    for item in await self._loaded(rows):
                        yield item  # one async yield per row, not two
                    continue
                for row in rows:
                    obj = new(model)
                    obj.__dict__.update(row.items())  # Model._from_rows' exact path, inlined
                    yield obj  # type: ignore[misc]

    def _plain_model(self) -> type[Model] | None:
        """The model, when rows become models by a plain ``__dict__`` fill
        (``_build_exact``): ``first()`` and ``iterate()`` then build them inline."""
        model = self._model
        if model is None or not self._fields_only or self._joins or self._include:
            return None
        return None if model._meta.converters else model

    @asynccontextmanager
    async def _cursor_connection(self) -> AsyncIterator[Any]:
        """The current transaction's connection, or a pooled one in a read-only transaction."""
        tx = current_tx(base_source(self._source))
        if tx is not None:
            yield tx.connection()
            return
        # Not via transaction(): an async generator may be finalised in another
        # context, where resetting the transaction ContextVar would fail.
        source = read_source(self._source)  # a replica when the source has one
        async with _acquire(source) as conn:
            xact = conn.transaction(readonly=True)
            await _exec.guard(conn, xact.start, "BEGIN READ ONLY", source)
            try:
                yield conn
            finally:
                await _exec.guard(conn, xact.rollback, "ROLLBACK", source)

    async def _chunks(
        self, conn: Any, sql: str, params: list[Any], batch: int
    ) -> AsyncIterator[list[Any]]:
        """The raw rows, ``batch`` per FETCH."""
        source = self._source
        cursor = await _exec.guard(conn, lambda: conn.cursor(sql, *params), sql, source)
        fetch = f"FETCH {batch}"
        step = lambda: cursor.fetch(batch)  # noqa: E731  (one closure per stream, not per FETCH)
        while rows := await _exec.guard(conn, step, fetch, source):
            yield rows

    def __repr__(self) -> str:
        sql, params = self.to_sql()
        return f"<QueryBuilder {sql!r} params={len(params)}>"


@lru_cache(maxsize=4096)
def _column(meta: Metadata | None, name: str) -> str:
    """Quoted column: a known field for unqualified names, a strict pattern for ``t.col``.

    Cached: a model's fields are fixed once its class exists, and an unknown name
    raises (nothing is cached for it). One C call instead of three per ``where(x=)``.
    """
    if "." in name or meta is None:
        return quote_ident(name)
    return meta.column(name)


@lru_cache(maxsize=1024)
def _compile_select(
    meta: Metadata | None, columns: tuple[str, ...]
) -> tuple[tuple[str, ...], bool]:
    """(select items, whether they are all declared fields under their own names).

    Cached per model and spelling: hot endpoints select the same columns every time.
    """
    items = []
    fields_only = True
    for spec in columns:
        for part in spec.split(","):
            m = _SELECT_ITEM.fullmatch(part)
            if not m:
                raise ValidationError("非法的查询列", field="select")
            name, alias = m.group(1), m.group(2)
            field = meta.fields.get(name) if meta is not None else None
            if field is not None and not alias:
                items.append(meta.field_select(field))  # type: ignore[union-attr]
                continue
            fields_only = False
            if name == "*":
                sql = "*"
            elif name.endswith(".*"):
                sql = quote_ident(name[:-2]) + ".*"
            else:
                sql = _column(meta, name)
            items.append(f"{sql} AS {quote_ident(alias)}" if alias else sql)
    return tuple(items), fields_only


@lru_cache(maxsize=1024)
def _parse_order(spec: str) -> tuple[tuple[str, str], ...]:
    """``"id desc, -age"`` -> ((name, " DESC ..."), ...); cached per spelling."""
    items = []
    for part in spec.split(","):
        m = _ORDER_ITEM.fullmatch(part)
        if not m:
            raise ValidationError("非法的排序字段", field="order_by")
        minus, name, direction, nulls = m.groups()
        desc = bool(minus) != (direction or "").lower().startswith("desc")
        items.append(
            (name, (" DESC" if desc else "") + (f" NULLS {nulls.upper()}" if nulls else ""))
        )
    return tuple(items)


# A fresh builder's attributes per model (see QueryBuilder._of).
_blanks: dict[type[Any], dict[str, Any]] = {}
_BLANKS_MAX = 1024

# SQL text by builder shape (see QueryBuilder._by_shape).
_shapes: dict[tuple[Any, ...], str] = {}
_SHAPES_MAX = 4096
# The _compiled() kinds whose parameters are the where values plus LIMIT/OFFSET.
_SHAPED_KINDS = frozenset(("select", "first", "count", "page"))


def _shape(entries: tuple[Entry, ...]) -> tuple[Any, ...]:
    """Where entries without their values: what their rendered SQL depends on."""
    out = []  # a plain loop: a generator would cost two more calls per builder
    for connector, item, args in entries:
        out.append((connector, _shape(item) if isinstance(item, tuple) else item, len(args)))
    return tuple(out)


def _gather(entries: tuple[Entry, ...], params: list[Any]) -> None:
    """The entries' values, in the order _render() appends them."""
    for _, item, args in entries:
        if isinstance(item, tuple):
            _gather(item, params)
        else:
            params.extend(args)


def _render(entries: tuple[Entry, ...], params: list[Any]) -> str:
    out = []
    for i, (connector, item, args) in enumerate(entries):
        if isinstance(item, tuple):
            text = "(" + _render(item, params) + ")"
        else:
            text = item.render(len(params))
            params.extend(args)
            if len(entries) > 1:
                text = f"({text})"
        out.append(text if i == 0 else f" {connector} {text}")
    return "".join(out)


def _order_key(name: str, suffix: str) -> tuple[str, bool, str | None]:
    nulls = suffix.rsplit(" ", 1)[1] if " NULLS " in suffix else None
    return name, suffix.startswith(" DESC"), nulls


def _non_negative(n: Any, what: str) -> int:
    if type(n) is not int or n < 0:
        raise ValidationError(f"{what} 必须是非负整数", field=what)
    return n


def _positive(n: Any, what: str) -> int:
    if type(n) is not int or n < 1:
        raise ValidationError(f"{what} 必须是正整数", field=what)
    return n

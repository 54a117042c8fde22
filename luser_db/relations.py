"""Relations between models and their eager loading (``query().include(...)``).

Declared as plain class attributes of a model (not annotations, so they are not
columns)::

    class Post(Model, table="posts"):
        id: int = Field(primary_key=True)
        author_id: int
        author = belongs_to(User)                       # posts.author_id -> users.id
        comments = has_many(Comment)                    # comments.post_id -> posts.id
        cover = has_one(Cover)                          # covers.post_id -> posts.id
        tags = many_to_many(Tag, through="post_tags")   # post_tags(post_id, tag_id)

One convention for keys: ``belongs_to`` reads ``<relation name>_id`` on the owner;
``has_many``/``has_one`` read ``<owner model in snake_case>_id`` on the target;
``many_to_many`` joins through a table with ``<owner>_id`` and ``<target>_id``.
Each can be overridden with ``foreign_key=`` (``owner_key=``/``target_key=``).

Loading is explicit: ``include("author", "comments.author")`` costs one query per
relation path, batched with ``= ANY($1)``, whatever the number of parents. Reading a
relation that was not included raises :class:`RelationNotLoaded` instead of quietly
sending a query per row (the N+1 that lazy loading hides). A loaded relation lives in
the instance ``__dict__``, so reading it costs what reading a field costs.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar, overload

from luser_common import InternalServerError, ValidationError

from . import _exec
from ._sql import quote_ident

if TYPE_CHECKING:
    from typing import Self

    from ._metadata import Metadata
    from .model import Model

__all__ = [
    "BelongsTo",
    "HasMany",
    "HasOne",
    "IncludeTree",
    "ManyToMany",
    "Relation",
    "RelationNotLoaded",
    "belongs_to",
    "compile_includes",
    "has_many",
    "has_one",
    "load_includes",
    "many_to_many",
    "preload",
    "relations_of",
]

M = TypeVar("M", bound="Model")
V = TypeVar("V")

# (relation name, nested tree) pairs in the order they were first asked for; immutable,
# so builders can share it like their other clause tuples.
IncludeTree: TypeAlias = tuple[tuple[str, "IncludeTree"], ...]

# An owner key column read back from a many-to-many join; never a field name.
_OWNER_KEY = "__luser_owner_key"


class RelationNotLoaded(InternalServerError):
    """A relation was read without ``include()``: a programming error, never a lazy load."""

    code = "RELATION_NOT_LOADED"
    default_message = "关联未加载"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Relation(Generic[M, V]):
    """A relation from the model it is declared on (the owner) to ``target``.

    A non-data descriptor: once loaded, the value sits in the instance ``__dict__``
    and Python finds it before this descriptor; ``__get__`` runs only when the
    relation was not loaded, and then raises.
    """

    kind = "relation"

    def __init__(self, target: type[M] | str) -> None:
        self._target = target
        self.name = ""
        self.owner: type[Model] | None = None
        self._sql: str | None = None

    def __set_name__(self, owner: type[Model], name: str) -> None:
        self.owner = owner
        self.name = name
        _RELATIONS.pop(owner, None)

    @overload
    def __get__(self, obj: None, objtype: type[Any] | None = None) -> Self: ...
    @overload
    def __get__(self, obj: object, objtype: type[Any] | None = None) -> V: ...
    def __get__(self, obj: object | None, objtype: type[Any] | None = None) -> Any:
        if obj is None:
            return self
        owner = type(obj).__name__
        raise RelationNotLoaded(
            f'关联 {owner}.{self.name} 未加载: 请在查询上加 .include("{self.name}")'
            f' (嵌套关联写完整路径, 如 "父关联.{self.name}")',
            details={"relation": f"{owner}.{self.name}"},
        )

    @property
    def target(self) -> type[M]:
        """The target model class (a string target is resolved on first use)."""
        target = self._target
        if isinstance(target, str):
            target = self._target = _resolve(target, self.owner)
        return target

    def _owner_meta(self) -> Metadata:
        assert self.owner is not None, "relation used before its class was created"
        return self.owner._meta

    def check(self) -> None:
        """Resolve the target and key fields now (a declaration mistake is a TypeError)."""
        _ = self.target

    async def load(self, items: Sequence[Model], source: str) -> list[Model]:
        """Fill this relation on ``items`` with one query; returns the loaded targets."""
        raise NotImplementedError


class BelongsTo(Relation[M, "M | None"]):
    """The owner holds the foreign key: ``post.author_id`` -> ``User.id``."""

    kind = "belongs_to"

    def __init__(self, target: type[M] | str, foreign_key: str | None = None) -> None:
        super().__init__(target)
        self._foreign_key = foreign_key

    @property
    def foreign_key(self) -> str:
        return _declared(self._owner_meta(), self._foreign_key or f"{self.name}_id", self)

    def check(self) -> None:
        _ = self.foreign_key

    async def load(self, items: Sequence[Model], source: str) -> list[Model]:
        fk, name = self.foreign_key, self.name
        keys = _distinct(_key_values(items, fk, self))
        by_key: dict[Any, Model] = {}
        if keys:
            target = self.target
            pk = target._meta.require_pk().name
            found = await _fetch(target, self._select_sql(target._meta), keys, source)
            by_key = {t.__dict__[pk]: t for t in found}
        for item in items:
            item.__dict__[name] = by_key.get(item.__dict__[fk])
        return list(by_key.values())

    def _select_sql(self, meta: Metadata) -> str:
        if self._sql is None:
            where = f"{meta.column(meta.require_pk().name)} = ANY($1)"
            self._sql = _select(meta, where, order=None)
        return self._sql


class HasMany(Relation[M, "list[M]"]):
    """The target holds the foreign key: ``comment.post_id`` -> ``Post.id``; a list."""

    kind = "has_many"

    def __init__(self, target: type[M] | str, foreign_key: str | None = None) -> None:
        super().__init__(target)
        self._foreign_key = foreign_key

    @property
    def foreign_key(self) -> str:
        assert self.owner is not None
        name = self._foreign_key or f"{_snake(self.owner.__name__)}_id"
        return _declared(self.target._meta, name, self)

    def check(self) -> None:
        _ = self.foreign_key

    async def load(self, items: Sequence[Model], source: str) -> list[Model]:
        pk = self._owner_meta().require_pk().name
        keys = _distinct(_key_values(items, pk, self))
        found: list[Any] = []
        groups: dict[Any, list[Model]] = {}
        if keys:
            meta = self.target._meta
            fk = self.foreign_key
            if self._sql is None:
                fk_col = meta.column(fk)
                self._sql = _select(meta, f"{fk_col} = ANY($1)", order=f"{fk_col}, ")
            rows = await _exec.fetch(self._sql, (keys,), source)
            found = self.target._from_rows(rows, exact=True)
            groups = _runs(rows, fk, found)
        self._assign(items, pk, groups)
        return found

    def _assign(self, items: Sequence[Model], pk: str, groups: dict[Any, list[Model]]) -> None:
        name = self.name
        for item in items:
            item.__dict__[name] = groups.get(item.__dict__[pk], [])


class HasOne(HasMany[M]):
    """Like ``has_many`` but at most one target (the one with the lowest key); or None."""

    kind = "has_one"

    if TYPE_CHECKING:

        @overload  # type: ignore[override]
        def __get__(self, obj: None, objtype: type[Any] | None = None) -> Self: ...
        @overload
        def __get__(self, obj: object, objtype: type[Any] | None = None) -> M | None: ...
        def __get__(self, obj: object | None, objtype: type[Any] | None = None) -> Any: ...

    def _assign(self, items: Sequence[Model], pk: str, groups: dict[Any, list[Model]]) -> None:
        name = self.name
        for item in items:
            group = groups.get(item.__dict__[pk])
            item.__dict__[name] = group[0] if group else None


class ManyToMany(Relation[M, "list[M]"]):
    """Targets reached through a join table ``through(<owner>_id, <target>_id)``."""

    kind = "many_to_many"

    def __init__(
        self,
        target: type[M] | str,
        through: str,
        owner_key: str | None = None,
        target_key: str | None = None,
    ) -> None:
        super().__init__(target)
        if not isinstance(through, str) or not through:
            raise TypeError("many_to_many() needs the join table name: through=...")
        self.through = through
        self._owner_key = owner_key
        self._target_key = target_key

    async def load(self, items: Sequence[Model], source: str) -> list[Model]:
        pk = self._owner_meta().require_pk().name
        keys = _distinct(_key_values(items, pk, self))
        groups: dict[Any, list[Model]] = {}
        shared: dict[Any, Model] = {}
        if keys:
            target = self.target
            target_pk = target._meta.require_pk().name
            for obj in await _fetch(target, self._join_sql(), keys, source):
                data = obj.__dict__
                owner = data.pop(_OWNER_KEY)
                # One object per target row, however many owners share it.
                obj = shared.setdefault(data[target_pk], obj)
                groups.setdefault(owner, []).append(obj)
        name = self.name
        for item in items:
            item.__dict__[name] = groups.get(item.__dict__[pk], [])
        return list(shared.values())

    def _join_sql(self) -> str:
        if self._sql is None:
            assert self.owner is not None
            meta = self.target._meta
            owner_key = quote_ident(self._owner_key or f"{_snake(self.owner.__name__)}_id")
            target_key = quote_ident(self._target_key or f"{_snake(meta.model.__name__)}_id")
            pk = f"{meta.qtable}.{meta.column(meta.require_pk().name)}"
            live = f" AND {meta.qtable}.{meta.live_filter}" if meta.live_filter else ""
            self._sql = (
                f"SELECT {meta.qualified_select}, _j.{owner_key} AS {quote_ident(_OWNER_KEY)}"
                f" FROM {meta.qtable} JOIN {quote_ident(self.through)} AS _j"
                f" ON _j.{target_key} = {pk}"
                f" WHERE _j.{owner_key} = ANY($1){live} ORDER BY {pk}"
            )
        return self._sql


def _declared(meta: Metadata, name: str, relation: Relation[Any, Any]) -> str:
    """The field ``name`` of ``meta``'s model; a declaration mistake is a TypeError."""
    field = meta.fields.get(name) or meta.by_column.get(name)
    if field is None:
        owner = relation.owner.__name__ if relation.owner else "?"
        raise TypeError(
            f"{owner}.{relation.name}: {meta.model.__name__} has no field {name!r};"
            " pass foreign_key=..."
        )
    return field.name


# -- declaring -------------------------------------------------------------------------


def belongs_to(target: type[M] | str, *, foreign_key: str | None = None) -> BelongsTo[M]:
    """The owner row points at one ``target`` row (``<name>_id`` by default); or None."""
    return BelongsTo(target, foreign_key)


def has_many(target: type[M] | str, *, foreign_key: str | None = None) -> HasMany[M]:
    """``target`` rows point at the owner (``<owner>_id`` by default); a list by target key."""
    return HasMany(target, foreign_key)


def has_one(target: type[M] | str, *, foreign_key: str | None = None) -> HasOne[M]:
    """One ``target`` row points at the owner (``<owner>_id`` by default); or None."""
    return HasOne(target, foreign_key)


def many_to_many(
    target: type[M] | str,
    *,
    through: str,
    owner_key: str | None = None,
    target_key: str | None = None,
) -> ManyToMany[M]:
    """Targets linked through join table ``through`` (``<owner>_id``, ``<target>_id``)."""
    return ManyToMany(target, through, owner_key, target_key)


# -- lookup ----------------------------------------------------------------------------

_RELATIONS: dict[type, dict[str, Relation[Any, Any]]] = {}


def relations_of(model: type[Model]) -> dict[str, Relation[Any, Any]]:
    """The relations declared on ``model`` and its bases, by name."""
    found = _RELATIONS.get(model)
    if found is None:
        found = {}
        for klass in reversed(model.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, Relation):
                    found[name] = value
        _RELATIONS[model] = found
    return found


def _resolve(name: str, owner: type[Model] | None) -> Any:
    """A model class by name: the owner's module first, then every model subclass."""
    from .model import Model

    module = sys.modules.get(owner.__module__) if owner is not None else None
    candidate = getattr(module, name, None) if module is not None else None
    if isinstance(candidate, type) and issubclass(candidate, Model):
        return candidate
    matches = [m for m in _all_models(Model) if m.__name__ == name or m.__qualname__ == name]
    if len(matches) != 1:
        problem = "not found" if not matches else "ambiguous"
        raise TypeError(f"relation target {name!r} is {problem}; pass the model class")
    return matches[0]


def _all_models(root: type) -> list[type]:
    out: list[type] = []
    children: list[type] = root.__subclasses__()
    for child in children:
        out.append(child)
        out.extend(_all_models(child))
    return out


# -- include paths ---------------------------------------------------------------------


def compile_includes(model: type[Model], tree: IncludeTree, paths: Iterable[str]) -> IncludeTree:
    """``tree`` plus ``paths`` (``"comments.author"``), each checked against the relations."""
    merged = _to_dict(tree)
    for path in paths:
        if not isinstance(path, str) or not path:
            raise ValidationError("include 的参数必须是关联名", field="include")
        node = merged
        current: type[Model] = model
        visited: list[type[Model]] = [model]
        for part in path.split("."):
            relation = _relation(current, part)
            relation.check()
            target = relation.target
            # A path may not come back to a model it passed through (post.comments.post):
            # that reloads rows already in hand. A self relation (user.manager) is fine.
            if target in visited and target is not current:
                raise ValidationError(
                    f"include 路径 {path[:128]} 形成循环: 又回到了 {target.__name__}",
                    field="include",
                )
            visited.append(target)
            current = target
            node = node.setdefault(part, {})
    return _to_tree(merged)


def _relation(model: type[Model], name: str) -> Relation[Any, Any]:
    relations = relations_of(model)
    found = relations.get(name)
    if found is None:
        known = ", ".join(sorted(relations)) or "无"
        raise ValidationError(
            f"{model.__name__} 没有关联 {name[:64]} (已声明的关联: {known})",
            field="include",
            details={"known": sorted(relations)},
        )
    return found


def _to_dict(tree: IncludeTree) -> dict[str, Any]:
    return {name: _to_dict(sub) for name, sub in tree}


def _to_tree(nodes: dict[str, Any]) -> IncludeTree:
    return tuple((name, _to_tree(sub)) for name, sub in nodes.items())


# -- loading ---------------------------------------------------------------------------


async def load_includes(
    model: type[Model], items: Sequence[Model], tree: IncludeTree, source: str
) -> None:
    """Load every relation in ``tree`` onto ``items``: one query per relation path.

    ``source`` is the data source the parents were read from; a target declared on
    the same source is read from it too (so ``using("replica")`` carries over), a
    target declared on another source is read from its own.
    """
    if not items:
        return
    relations = relations_of(model)
    for name, sub in tree:
        relation = relations[name]
        target_meta = relation.target._meta
        target_source = source if target_meta.source == model._meta.source else target_meta.source
        loaded = await relation.load(items, target_source)
        if sub:
            await load_includes(relation.target, loaded, sub, target_source)


async def preload(items: Sequence[M], *paths: str, using: str | None = None) -> Sequence[M]:
    """Load relations onto models already in hand (``find_by_id`` results, say)."""
    if not items:
        return items
    model = type(items[0])
    if any(type(item) is not model for item in items):
        raise ValidationError("preload 的对象必须是同一个模型", field="include")
    tree = compile_includes(model, (), paths)
    await load_includes(model, items, tree, using or model._meta.source)
    return items


def _key_values(items: Sequence[Model], key: str, relation: Relation[Any, Any]) -> list[Any]:
    try:
        return [item.__dict__[key] for item in items]
    except KeyError:
        raise ValidationError(
            f"加载关联 {relation.name} 需要查询出字段 {key}", field="include"
        ) from None


def _distinct(values: list[Any]) -> list[Any]:
    out = list(dict.fromkeys(values))
    if None in out:
        out.remove(None)
    return out


def _runs(rows: Sequence[Any], key: str, found: list[Any]) -> dict[Any, list[Model]]:
    """``found`` (built from ``rows``, sorted by ``key``) cut into one list per key value.

    The key is read from the driver's rows and grouped by ``groupby``, both in C: a
    Python step per group rather than per row.
    """
    groups: dict[Any, list[Model]] = {}
    start = 0
    for value, run in groupby(map(itemgetter(key), rows)):
        end = start + sum(1 for _ in run)
        groups[value] = found[start:end]
        start = end
    return groups


def _select(meta: Metadata, where: str, order: str | None = "") -> str:
    """SELECT the fields WHERE ``where`` (live rows), ORDER BY ``order`` + primary key."""
    live = f" AND {meta.live_filter}" if meta.live_filter else ""
    tail = f" ORDER BY {order}{meta.column(meta.require_pk().name)}" if order is not None else ""
    return f"SELECT {meta.select_list} FROM {meta.qtable} WHERE {where}{live}{tail}"


async def _fetch(target: type[Model], sql: str, keys: list[Any], source: str) -> list[Model]:
    rows = await _exec.fetch(sql, (keys,), source)
    return target._from_rows(rows, exact=True)

"""Model classes generated from a live schema (JFinal's Generator, Django's inspectdb).

``generate_models(conn, schema="public")`` reads the catalog in three queries and
returns the source of one module: an ``Enum`` per PostgreSQL enum the tables use,
then one ``Model`` per table (partitions left out, the parent kept) with

- typed fields: int, float, Decimal, str, bool, bytes, UUID, date / time / datetime /
  timedelta, jsonb → ``dict[str, Any]`` (``list[Any]`` when its default is ``'[]'``),
  arrays → ``list[T]``, enums → the generated class;
- ``T | None = None`` for nullable columns, ``Field(generated=True)`` for columns the
  database fills (defaults, identity, generated columns);
- every primary key column as ``Field(primary_key=True)``, in key order;
- ``soft_delete=True`` when there is a ``deleted_at`` timestamp (``created_at`` /
  ``updated_at`` need nothing: Model recognises them by name);
- the table's comment as the docstring.

A type with no Python mapping becomes ``Any`` with ``pg_type`` set and a comment,
never an error. Names that are Python keywords, or that would hide a ``Model``
method (a column called ``update``), get a trailing ``_`` and ``Field(column=...)``.
The output is already in ``ruff format`` style (and is piped through ruff when it is
installed), so ``--check`` compares like with like on every machine.
"""

from __future__ import annotations

import keyword
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._sql import _IDENT

__all__ = ["ColumnInfo", "TableInfo", "generate_models", "introspect", "render_models"]

SKIPPED_TABLES = frozenset({"luser_schema_migrations"})

_SIMPLE: dict[str, tuple[str, str | None]] = {
    # typname -> (annotation, import line it needs)
    "int2": ("int", None),
    "int4": ("int", None),
    "int8": ("int", None),
    "oid": ("int", None),
    "float4": ("float", None),
    "float8": ("float", None),
    "numeric": ("Decimal", "from decimal import Decimal"),
    "bool": ("bool", None),
    "text": ("str", None),
    "varchar": ("str", None),
    "bpchar": ("str", None),
    "char": ("str", None),
    "name": ("str", None),
    "citext": ("str", None),
    "bytea": ("bytes", None),
    "uuid": ("UUID", "from uuid import UUID"),
    "date": ("date", "from datetime import date"),
    "time": ("time", "from datetime import time"),
    "timetz": ("time", "from datetime import time"),
    "timestamp": ("datetime", "from datetime import datetime"),
    "timestamptz": ("datetime", "from datetime import datetime"),
    "interval": ("timedelta", "from datetime import timedelta"),
}
_JSON = ("json", "jsonb")
_IMPORTED = {"Any", "Decimal", "UUID", "date", "time", "datetime", "timedelta", "StrEnum"}
_IMPORTED |= {"Field", "Model"}


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type_name: str  # pg_type.typname (``_int4`` for int4[])
    type_kind: str  # pg_type.typtype: b base, e enum, d domain, c composite, ...
    element: str | None  # the element's typname for an array
    element_kind: str | None
    formatted: str  # format_type(), for comments and pg_type
    not_null: bool
    default: str | None
    filled_by_db: bool  # identity or generated column


@dataclass
class TableInfo:
    name: str
    schema: str
    comment: str | None
    columns: list[ColumnInfo] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)


_COLUMNS = """
SELECT c.relname AS table_name, obj_description(c.oid, 'pg_class') AS comment,
       a.attname AS column_name, t.typname, t.typtype::text, et.typname AS element,
       et.typtype::text AS element_kind, format_type(a.atttypid, a.atttypmod) AS formatted,
       a.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS default_expr,
       (a.attidentity <> '' OR a.attgenerated <> '') AS filled_by_db
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname, a.attnum
"""

_PRIMARY_KEYS = """
SELECT c.relname AS table_name, a.attname AS column_name
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE i.indisprimary AND n.nspname = $1
ORDER BY c.relname, k.ord
"""

_ENUMS = """
SELECT t.typname, e.enumlabel
FROM pg_type t
JOIN pg_enum e ON e.enumtypid = t.oid
ORDER BY t.typname, e.enumsortorder
"""


async def introspect(
    conn: Any, schema: str = "public", tables: Sequence[str] | None = None
) -> tuple[list[TableInfo], dict[str, list[str]]]:
    """Tables of ``schema`` (only ``tables`` if given) and the labels of every enum type."""
    found: dict[str, TableInfo] = {}
    for row in await conn.fetch(_COLUMNS, schema):
        table = found.get(row["table_name"])
        if table is None:
            table = found[row["table_name"]] = TableInfo(row["table_name"], schema, row["comment"])
        table.columns.append(
            ColumnInfo(
                row["column_name"],
                row["typname"],
                row["typtype"],
                row["element"],
                row["element_kind"],
                row["formatted"],
                row["attnotnull"],
                row["default_expr"],
                row["filled_by_db"],
            )
        )
    for row in await conn.fetch(_PRIMARY_KEYS, schema):
        if row["table_name"] in found:
            found[row["table_name"]].primary_key.append(row["column_name"])
    enums: dict[str, list[str]] = {}
    for row in await conn.fetch(_ENUMS):
        enums.setdefault(row["typname"], []).append(row["enumlabel"])
    wanted = set(tables) if tables else None
    chosen = [
        t
        for name, t in sorted(found.items())
        if (wanted is None and name not in SKIPPED_TABLES) or (wanted and name in wanted)
    ]
    return chosen, enums


async def generate_models(
    conn: Any,
    schema: str = "public",
    tables: Sequence[str] | None = None,
    *,
    command: str | None = None,
) -> str:
    """The source of a module with one Model per table of ``schema`` (formatted)."""
    infos, enums = await introspect(conn, schema, tables)
    missing = sorted(set(tables or ()) - {t.name for t in infos})
    if missing or not infos:
        from luser_common import NotFound

        what = f"这些表: {', '.join(missing)}" if missing else "任何表"
        raise NotFound(f"schema {schema} 中没有{what}")
    return format_source(render_models(infos, enums, schema=schema, command=command))


# -- naming -------------------------------------------------------------------------------


def _pascal(name: str) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", name) if w]
    text = "".join(w[:1].upper() + w[1:] for w in words) or "Table"
    return text if text[0].isalpha() else f"T{text}"


def _model_attributes() -> frozenset[str]:
    from .model import Model

    return frozenset(dir(Model))


def _attribute(column: str, taken: frozenset[str]) -> str:
    if keyword.iskeyword(column) or column in taken or column.startswith("_"):
        return column.lstrip("_") + "_" if column.startswith("_") else column + "_"
    return column


def _member(label: str, used: set[str], index: int) -> str:
    name = re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_").upper()
    if not name or not name[0].isalpha() or keyword.iskeyword(name) or name in used:
        name = f"VALUE_{index}"
    used.add(name)
    return name


class _Names:
    """Class names: unique, never a keyword, never one of the imported names."""

    def __init__(self) -> None:
        self.used: set[str] = set(_IMPORTED)

    def claim(self, wanted: str, suffix: str) -> str:
        name = wanted + "_" if keyword.iskeyword(wanted) else wanted
        if name in self.used:
            name = wanted + suffix
        base, n = name, 2
        while name in self.used:
            name, n = f"{base}{n}", n + 1
        self.used.add(name)
        return name


# -- rendering ----------------------------------------------------------------------------


@dataclass
class _Module:
    imports: set[str] = field(default_factory=set)
    enum_classes: dict[str, str] = field(default_factory=dict)  # typname -> class name
    blocks: list[str] = field(default_factory=list)


def _json_annotation(column: ColumnInfo) -> str:
    default = (column.default or "").replace(" ", "")
    return "list[Any]" if default.startswith("'[]'") else "dict[str, Any]"


def _annotation(
    column: ColumnInfo, module: _Module, enums: dict[str, list[str]], names: _Names
) -> tuple[str, bool]:
    """(Python type, supported?) for ``column``; unsupported ones are ``Any``."""
    if column.type_name in _SIMPLE:
        annotation, needs = _SIMPLE[column.type_name]
        if needs:
            module.imports.add(needs)
        return annotation, True
    if column.type_name in _JSON:
        module.imports.add("from typing import Any")
        return _json_annotation(column), True
    if column.type_kind == "e" and column.type_name in enums:
        return _enum_class(column.type_name, module, enums, names), True
    if column.element is not None:
        if column.element in _SIMPLE:
            inner, needs = _SIMPLE[column.element]
            if needs:
                module.imports.add(needs)
            return f"list[{inner}]", True
        if column.element_kind == "e":
            return "list[str]", True  # enum arrays bind as text[]; labels stay strings
    module.imports.add("from typing import Any")
    return "Any", False


def _enum_class(type_name: str, module: _Module, enums: dict[str, list[str]], names: _Names) -> str:
    existing = module.enum_classes.get(type_name)
    if existing is not None:
        return existing
    cls = names.claim(_pascal(type_name), "Enum")
    module.enum_classes[type_name] = cls
    module.imports.add("from enum import StrEnum")
    used: set[str] = set()
    members = [
        f"    {_member(label, used, i)} = {_literal(label)}"
        for i, label in enumerate(enums[type_name], 1)
    ]
    doc = f'    """PostgreSQL enum ``{type_name}``."""\n\n'
    module.blocks.append(f"class {cls}(StrEnum):\n{doc}" + "\n".join(members) + "\n")
    return cls


def _literal(text: str) -> str:
    """A double-quoted Python string literal, the way ruff format writes it."""
    quoted = repr(text)
    if quoted.startswith("'") and '"' not in text:
        quoted = '"' + quoted[1:-1].replace("\\'", "'") + '"'
    return quoted


def _field_line(
    column: ColumnInfo,
    table: TableInfo,
    module: _Module,
    enums: dict[str, list[str]],
    names: _Names,
    taken: frozenset[str],
) -> str:
    annotation, supported = _annotation(column, module, enums, names)
    attr = _attribute(column.name, taken)
    nullable = not column.not_null
    key = column.name in table.primary_key
    filled = column.filled_by_db or column.default is not None
    options: list[str] = []
    if key:
        options.append("primary_key=True")
    if attr != column.name:
        options.append(f"column={_literal(column.name)}")
    if key and annotation == "int":
        # Model treats an int key as database-filled unless told otherwise.
        if not filled:
            options.append("generated=False")
    elif filled:
        options.append("generated=True")
    if not supported:
        options.append(f"pg_type={_literal(column.formatted)}")
    if nullable and annotation != "Any":
        annotation += " | None"
    if nullable and options:
        options.insert(0, "default=None")
    line = f"    {attr}: {annotation}"
    if options:
        line += f" = Field({', '.join(options)})"
    elif nullable:
        line += " = None"
    if not supported:
        line += f"  # unsupported type {column.formatted}"
    return line


def _docstring(text: str | None, fallback: str) -> list[str]:
    body = (text or fallback).strip().replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    lines = textwrap.wrap(" ".join(body.split()), width=90) or [fallback]
    if len(lines) == 1:
        return [f'    """{lines[0]}"""']
    return ['    """' + lines[0], *[f"    {line}" for line in lines[1:]], '    """']


def _model_block(
    table: TableInfo,
    module: _Module,
    enums: dict[str, list[str]],
    names: _Names,
    taken: frozenset[str],
) -> str:
    bad = [c.name for c in table.columns if not _IDENT.fullmatch(c.name)]
    if not _IDENT.fullmatch(table.name) or bad:
        what = f"column {bad[0]!r}" if bad else "its name"
        return f"# Skipped table {table.name!r}: {what} is not a plain identifier.\n"
    cls = names.claim(_pascal(table.name), "Table")
    qualified = table.name if table.schema == "public" else f"{table.schema}.{table.name}"
    args = [f"table={_literal(qualified)}"]
    if any(
        c.name == "deleted_at" and c.type_name in ("timestamptz", "timestamp")
        for c in table.columns
    ):
        args.append("soft_delete=True")
    lines = [f"class {cls}(Model, {', '.join(args)}):"]
    lines += _docstring(table.comment, f"Table ``{qualified}``.")
    lines.append("")
    lines += [_field_line(c, table, module, enums, names, taken) for c in table.columns]
    return "\n".join(lines) + "\n"


def render_models(
    tables: Iterable[TableInfo],
    enums: dict[str, list[str]],
    *,
    schema: str = "public",
    command: str | None = None,
) -> str:
    """The module source for ``tables`` (already in ruff format style)."""
    module = _Module()
    names = _Names()
    taken = _model_attributes()
    models = [_model_block(t, module, enums, names, taken) for t in tables]
    enum_blocks = list(module.blocks)
    how = command or f"luser db generate-models --schema {schema}"
    head = [
        f'"""Models generated from the {schema} schema by ``luser db generate-models``.',
        "",
        "Do not edit by hand; regenerate with the command below, and run it with ``--check``",
        "in CI to fail when the schema and this file drift apart::",
        "",
        f"    {how}",
        '"""',
        "",
    ]
    std = sorted(module.imports, key=_import_key)
    imports = _merge(std)
    body = [*head, *imports, *([""] if imports else []), "from luser_db import Field, Model"]
    body += ["", ""]
    blocks = enum_blocks + models
    return "\n".join(body) + "\n\n\n".join(blocks)


def _import_key(line: str) -> str:
    return line.split()[1]


def _merge(lines: list[str]) -> list[str]:
    """``from datetime import date`` + ``... import datetime`` → one sorted line per module."""
    by_module: dict[str, set[str]] = {}
    for line in lines:
        _, mod, _, name = line.split()
        by_module.setdefault(mod, set()).add(name)
    return [f"from {mod} import {', '.join(sorted(n))}" for mod, n in sorted(by_module.items())]


# -- formatting ---------------------------------------------------------------------------


def _ruff() -> list[str] | None:
    beside = Path(sys.executable).with_name("ruff")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("ruff")
    return [found] if found else None


def format_source(source: str) -> str:
    """``source`` through ``ruff format`` (fixed settings) when ruff is installed.

    The renderer already writes ruff's style, so this is a safety net, not a
    dependency: the same schema gives the same bytes with or without ruff.
    """
    ruff = _ruff()
    if ruff is None:
        return source
    result = subprocess.run(
        [
            *ruff,
            "format",
            "--isolated",
            "--line-length",
            "100",
            "--stdin-filename",
            "models.py",
            "-",
        ],
        input=source,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout if result.returncode == 0 else source

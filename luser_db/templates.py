"""SQL template files: statements kept in ``.sql`` files and called by name.

A folder of ``.sql`` files (``database.sql_dir``, default ``sql/``, a list allowed)
in aiosql's format: each statement starts with ``-- name: find_adults`` and may be
followed by ``--`` docstring lines. The file's path below the folder is the
namespace: ``users.sql`` → ``users.find_adults``, ``admin/users.sql`` →
``admin.users.find_adults``. aiosql's own parser reads the files, so existing
aiosql files work unchanged (its operation suffixes ``^ ! <! $ *! #`` are accepted
and ignored: the caller picks ``template`` / ``template_first`` / ...).

Parameters are ``:name`` (keyword arguments) or ``?`` / ``$n`` (positional ones),
never both in one statement. Optional fragments are Jinja2 (sandboxed):

    -- name: search
    SELECT * FROM users WHERE true
    {% if name %} AND name = :name {% endif %}
    ORDER BY {{ sort }}

Every value is bound, never interpolated: Jinja only decides *which* text is kept;
a ``{{ x }}`` output is accepted only when ``x`` is an identifier that passes
``quote_ident`` (it is written quoted), anything else is a ValidationError.
Statements that could smuggle a value into the text another way (``{% filter %}``,
macros, call blocks, include/import/extends) are refused when the file loads.

Statements without Jinja syntax are compiled once at load, so a call costs a dict
lookup and an argument list on top of ``Db.find``. Rendered dynamic statements are
compiled once per distinct text (memoised). Files load once; with ``reload`` (the
default in development: ``env == "development"``) every lookup
re-reads the folder when a file was added, removed or changed.
"""

from __future__ import annotations

import difflib
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from luser_common import ConfigError, ValidationError

from ._sql import OPENERS, _ident_char, quote_ident, skip_literal

__all__ = [
    "SqlFiles",
    "SqlTemplate",
    "SqlTemplateError",
    "render_template",
    "set_sql_dirs",
    "sql_files",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOLLAR = re.compile(r"\$([0-9]+)")
_JINJA = re.compile(r"\{[{%#]")
_MEMO_SIZE = 256
_TRUTH_TESTS = ("none", "defined", "undefined")


class SqlTemplateError(ConfigError):
    """A template file or folder is wrong (parse error, duplicate or unknown name, unsafe tag)."""

    code = "SQL_TEMPLATE_ERROR"
    default_message = "SQL 模板错误"


# -- placeholders -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Compiled:
    """One rendering with its placeholders numbered ``$1..$n``.

    ``names`` are the keyword parameters in ``$`` order (empty for a positional
    statement, whose ``arity`` is how many arguments it takes).
    """

    sql: str
    names: tuple[str, ...]
    arity: int


def _scan(sql: str) -> list[tuple[int, int, str]]:
    """Placeholders outside literals and comments: (start, end, token) where token is
    ``:name``, ``?``, ``??`` or ``$n``. ``::`` casts are skipped."""
    marks: list[tuple[int, int, str]] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in OPENERS:
            skipped = skip_literal(sql, i)
            if skipped != i:
                i = skipped
                continue
        if c == ":":
            if sql.startswith("::", i):
                i += 2
                continue
            name = _NAME.match(sql, i + 1)
            # Preceded by a name or digit it is a slice bound (``arr[1:n]``), not a parameter.
            if name and not (i > 0 and _ident_char(sql[i - 1])):
                marks.append((i, name.end(), ":" + name.group(0)))
                i = name.end()
            else:
                i += 1
        elif c == "$" and not (i > 0 and _ident_char(sql[i - 1])):
            param = _DOLLAR.match(sql, i)
            if param:
                marks.append((i, param.end(), param.group(0)))
                i = param.end()
            else:
                i += 1
        elif c == "?":
            token = "??" if sql.startswith("??", i) else "?"
            marks.append((i, i + len(token), token))
            i += len(token)
        else:
            i += 1
    return marks


@lru_cache(maxsize=4096)
def compile_sql(sql: str) -> Compiled:
    """``sql`` with ``:name`` / ``?`` placeholders rewritten to ``$n`` (memoised).

    ``??`` is a literal ``?`` (the jsonb operator). Mixing ``:name`` with ``?`` or
    ``$n`` in one statement is refused: the order of the arguments would be a guess.
    """
    marks = _scan(sql)
    named = [t for _, _, t in marks if t.startswith(":")]
    positional = [t for _, _, t in marks if t == "?" or t.startswith("$")]
    if named and positional:
        raise SqlTemplateError("同一语句不能混用 :name 与 ? / $n 参数")
    if any(t.startswith("$") for t in positional):
        if "?" in positional:
            raise SqlTemplateError("同一语句不能混用 ? 与 $n 参数")
        arity = max(int(t[1:]) for t in positional)
        return Compiled(_rewrite(sql, marks, lambda t: t), (), arity)
    order: dict[str, int] = {}
    counter = iter(range(1, len(marks) + 1))

    def number(token: str) -> str:
        if token == "??":
            return "?"
        if token == "?":
            return f"${next(counter)}"
        if token not in order:
            order[token] = len(order) + 1
        return f"${order[token]}"

    text = _rewrite(sql, marks, number)
    return Compiled(text, tuple(t[1:] for t in order), len(positional))


def _rewrite(sql: str, marks: list[tuple[int, int, str]], replace: Callable[[str], str]) -> str:
    out: list[str] = []
    pos = 0
    for start, end, token in marks:
        out.append(sql[pos:start])
        out.append(replace(token))
        pos = end
    out.append(sql[pos:])
    return "".join(out)


# -- one template -------------------------------------------------------------------------


def _identifier_only(value: Any) -> str:
    """Jinja ``finalize``: the only text a template may output is a checked identifier."""
    from jinja2 import Undefined

    if value is None or isinstance(value, Undefined):
        raise ValidationError("模板输出的标识符未提供", field="template")
    if not isinstance(value, str):
        raise ValidationError("模板只能输出标识符; 取值请用 :name 参数绑定", field="template")
    return quote_ident(value)


_REFUSED_TAGS = {
    "FilterBlock": "{% filter %}",
    "Macro": "{% macro %}",
    "CallBlock": "{% call %}",
    "Include": "{% include %}",
    "Import": "{% import %}",
    "FromImport": "{% from ... import %}",
    "Extends": "{% extends %}",
    "Block": "{% block %}",
}


@lru_cache(maxsize=1)
def _environment() -> Any:
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(
        finalize=_identifier_only, autoescape=False, trim_blocks=True, lstrip_blocks=True
    )


@dataclass(slots=True)
class SqlTemplate:
    """One named statement: where it came from, its text, and how to render it."""

    name: str
    path: Path
    line: int  # of the ``-- name:`` line
    doc: str
    source: str
    variables: frozenset[str]  # every name the statement reads (Jinja or :name)
    jinja_variables: frozenset[str]
    compiled: Compiled | None  # set when the statement has no Jinja syntax
    jinja: Any = None
    body_line: int = 0  # first line of the SQL itself, for messages
    defaults: dict[str, None] = field(default_factory=dict)
    # (variable, only tested for truth?) in a fixed order: the memo key of a rendering.
    shape: tuple[tuple[str, bool], ...] = ()
    memo: dict[tuple[Any, ...], Compiled] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.defaults = dict.fromkeys(self.jinja_variables)

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"

    def _rendered(self, params: Mapping[str, Any]) -> Compiled:
        """The compiled rendering for ``params``, memoised by what the fragments read of them.

        A variable only tested for truth (``{% if x %}``, ``is none``) contributes its
        truthiness to the key, any other its value; Jinja runs once per distinct key
        (up to _MEMO_SIZE per template), which is what keeps a call near ``Db.find``.
        """
        # A variable the caller left out is None, so ``{% if x is not none %}`` reads well.
        values = {**self.defaults, **params}
        key = tuple(
            (values[n] is None, not values[n]) if tested else values[n] for n, tested in self.shape
        )
        try:
            compiled = self.memo.get(key)
        except TypeError:  # an unhashable value (a list walked by {% for %}): no memo
            return compile_sql(self.jinja.render(values))
        if compiled is None:
            compiled = compile_sql(self.jinja.render(values))
            if len(self.memo) < _MEMO_SIZE:
                self.memo[key] = compiled
        return compiled

    def render(self, args: Sequence[Any], params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """``(sql, arguments)`` for a call; ValidationError on a missing or extra parameter."""
        compiled = self.compiled
        if compiled is None:
            compiled = self._rendered(params)
        if len(params) > len(compiled.names):
            extra = [k for k in params if k not in self.variables]
            if extra:
                raise ValidationError(
                    f"模板 {self.name} 没有参数 {extra[0][:64]}", field=extra[0][:64]
                )
        if compiled.names:
            if args:
                raise ValidationError(f"模板 {self.name} 的参数按名称传递", field=self.name)
            try:
                return compiled.sql, [params[n] for n in compiled.names]
            except KeyError as exc:
                missing = str(exc.args[0])
                raise ValidationError(
                    f"模板 {self.name} 缺少参数 {missing}", field=missing
                ) from None
        if len(args) != compiled.arity:
            raise ValidationError(
                f"模板 {self.name} 需要 {compiled.arity} 个位置参数, 收到 {len(args)} 个",
                field=self.name,
            )
        return compiled.sql, list(args)


def _body_offset(text: str) -> int:
    """Lines between the ``-- name:`` line and the first SQL line (the docstring)."""
    lines = text.splitlines()[1:]
    for i, line in enumerate(lines, 1):
        if not line.lstrip().startswith("--") and line.strip():
            return i
    return 1


def _build(name: str, path: Path, line: int, doc: str, sql: str, body_line: int) -> SqlTemplate:
    if not _JINJA.search(sql):
        compiled = compile_sql(sql)
        names = frozenset(compiled.names)
        return SqlTemplate(
            name, path, line, doc, sql, names, frozenset(), compiled, body_line=body_line
        )
    from jinja2 import TemplateSyntaxError, meta, nodes

    env = _environment()
    try:
        tree = env.parse(sql)
    except TemplateSyntaxError as exc:
        raise SqlTemplateError(
            f"{path}:{body_line + (exc.lineno or 1) - 1}: {name}: 模板语法错误: {exc.message}"
        ) from None
    for node in tree.find_all(nodes.Stmt):
        tag = _REFUSED_TAGS.get(type(node).__name__)
        if tag is not None:
            raise SqlTemplateError(
                f"{path}:{body_line + node.lineno - 1}: {name}: 不允许 {tag}"
                " (它能把取值写进 SQL; 取值请用 :name 参数绑定)"
            )
    jinja_vars = frozenset(meta.find_undeclared_variables(tree))
    tested = _truth_only(tree, jinja_vars)
    text = " ".join(n.data for n in tree.find_all(nodes.TemplateData))
    bound = frozenset(t[1:] for _, _, t in _scan(text) if t.startswith(":"))
    return SqlTemplate(
        name,
        path,
        line,
        doc,
        sql,
        jinja_vars | bound,
        jinja_vars,
        None,
        env.from_string(tree),
        body_line,
        shape=tuple((n, n in tested) for n in sorted(jinja_vars)),
    )


def _truth_only(tree: Any, variables: frozenset[str]) -> frozenset[str]:
    """The variables every use of which is a truth test in an ``{% if %}`` condition."""
    from jinja2 import nodes

    valued: set[str] = set()

    def walk(node: Any, in_test: bool) -> None:
        if isinstance(node, nodes.If):
            walk(node.test, True)
            for child in (*node.body, *node.elif_, *node.else_):
                walk(child, False)
        elif isinstance(node, nodes.Name):
            if not in_test:
                valued.add(node.name)
        elif in_test and isinstance(node, nodes.Not | nodes.And | nodes.Or):
            for child in node.iter_child_nodes():
                walk(child, True)
        elif (
            in_test
            and isinstance(node, nodes.Test)
            and node.name in _TRUTH_TESTS
            and isinstance(node.node, nodes.Name)
        ):
            walk(node.node, True)
        else:
            for child in node.iter_child_nodes():
                walk(child, False)

    walk(tree, False)
    return variables - valued


# -- a folder of files --------------------------------------------------------------------


class _Passthrough:
    """aiosql driver adapter that leaves the SQL as written (luser_db numbers it)."""

    def process_sql(self, query_name: str, op_type: Any, sql: str) -> str:
        return sql


@dataclass
class SqlFiles:
    """Every template under ``dirs``; ``get(name)`` reloads first when ``reload`` is on."""

    dirs: tuple[Path, ...]
    reload: bool = False
    templates: dict[str, SqlTemplate] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    _stamp: tuple[Any, ...] = ()
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, dirs: Sequence[str | os.PathLike[str]], *, reload: bool = False) -> SqlFiles:
        """Read every file now; SqlTemplateError listing every problem found."""
        files = cls(tuple(Path(d) for d in dirs), reload)
        files._read()
        files.raise_problems()
        return files

    @classmethod
    def scan(cls, dirs: Sequence[str | os.PathLike[str]]) -> SqlFiles:
        """Read every file, keeping what loads and listing the rest in ``problems``."""
        files = cls(tuple(Path(d) for d in dirs))
        files._read()
        return files

    def raise_problems(self) -> None:
        if self.problems:
            raise SqlTemplateError("; ".join(self.problems))

    def files(self) -> list[Path]:
        return [p for d in self.dirs if d.is_dir() for p in sorted(d.rglob("*.sql"))]

    def _signature(self) -> tuple[Any, ...]:
        stamp: list[Any] = []
        for path in self.files():
            st = path.stat()
            stamp.append((str(path), st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(stamp)

    def _read(self) -> None:
        """(Re)load every file, collecting problems instead of stopping at the first."""
        from aiosql.query_loader import QueryLoader
        from aiosql.utils import SQLParseException

        loader = QueryLoader(_Passthrough(), None, mandatory_parameters=False)  # type: ignore[arg-type]
        stamp = self._signature()
        templates: dict[str, SqlTemplate] = {}
        problems: list[str] = []
        for folder in self.dirs:
            if not folder.is_dir():
                continue
            for path in sorted(folder.rglob("*.sql")):
                namespace = list(path.relative_to(folder).with_suffix("").parts)
                text = path.read_text(encoding="utf-8")
                try:
                    data = loader.load_query_data_from_sql(text, namespace, path)
                except SQLParseException as exc:
                    problems.append(f"{path}: {exc}")
                    continue
                for datum in data:
                    self._add(templates, problems, datum, text)
        with self._lock:
            self.templates, self.problems, self._stamp = templates, problems, stamp

    @staticmethod
    def _add(templates: dict[str, SqlTemplate], problems: list[str], datum: Any, text: str) -> None:
        path, line = Path(datum.floc[0]), int(datum.floc[1])
        name = datum.query_name
        chunk = "\n".join(text.splitlines()[line - 1 :])
        body_line = line + _body_offset(chunk)
        try:
            template = _build(name, path, line, datum.doc_comments, datum.sql, body_line)
        except SqlTemplateError as exc:
            message = exc.message
            problems.append(
                message if message.startswith(str(path)) else f"{path}:{line}: {name}: {message}"
            )
            return
        first = templates.get(name)
        if first is not None:
            problems.append(f"{path}:{line}: 模板名重复: {name} (已在 {first.location} 定义)")
            return
        templates[name] = template

    def _fresh(self) -> None:
        if self.reload and self._signature() != self._stamp:
            self._read()
            self.raise_problems()

    def get(self, name: str) -> SqlTemplate:
        """The template called ``name``; SqlTemplateError naming the folders and close names."""
        if self.reload:
            self._fresh()
        template = self.templates.get(name)
        if template is None:
            raise self._not_found(name)
        return template

    def _not_found(self, name: str) -> SqlTemplateError:
        where = ", ".join(str(d) for d in self.dirs) or "(未配置)"
        close = difflib.get_close_matches(name, list(self.templates), n=3, cutoff=0.6)
        hint = f"; 相近的名字: {', '.join(close)}" if close else ""
        missing = [str(d) for d in self.dirs if not d.is_dir()]
        if missing:
            hint += f"; 文件夹不存在: {', '.join(missing)}"
        return SqlTemplateError(f"找不到 SQL 模板 {name[:100]} (已搜索 {where}){hint}")

    def render(
        self, name: str, args: Sequence[Any], params: Mapping[str, Any]
    ) -> tuple[str, list[Any]]:
        return self.get(name).render(args, params)

    def __iter__(self) -> Iterator[SqlTemplate]:
        if self.reload:
            self._fresh()
        return iter(list(self.templates.values()))

    def __len__(self) -> int:
        return len(self.templates)


# -- the default folder (from config) -----------------------------------------------------

_default: SqlFiles | None = None


def _configured() -> tuple[list[str], bool]:
    from luser_config import get_config, is_initialized, load_config

    cfg = get_config() if is_initialized() else load_config()
    dirs = cfg.database.sql_dir
    development = cfg.env == "development"
    return ([dirs] if isinstance(dirs, str) else list(dirs)), development


def configured_dirs() -> list[str]:
    """The folders ``database.sql_dir`` names."""
    return _configured()[0]


def sql_files() -> SqlFiles:
    """The templates every ``Db.template`` call reads: ``set_sql_dirs``'s, else the config's."""
    global _default
    files = _default
    if files is None:
        dirs, development = _configured()
        files = _default = SqlFiles.load(dirs, reload=development)
    return files


def set_sql_dirs(*dirs: str | os.PathLike[str], reload: bool | None = None) -> SqlFiles:
    """Load templates from ``dirs`` (default: ``database.sql_dir``) and use them from now on.

    ``reload`` defaults to on in development. Called with no folders it re-reads the
    configured ones, which is also how a test returns to the config after its own.
    """
    global _default
    configured, development = _configured()
    _default = SqlFiles.load(dirs or configured, reload=development if reload is None else reload)
    return _default


def reset_sql_files() -> None:
    """Forget the loaded templates; the next call loads the configured folders again."""
    global _default
    _default = None


def render_template(name: str, /, *args: Any, **params: Any) -> tuple[str, list[Any]]:
    """``(sql, arguments)`` that ``Db.template(name, ...)`` would send; no database needed."""
    return sql_files().get(name).render(args, params)

"""TOML files, with the line of every key (tomllib gives none, so we scan the text)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from .base import Layer, Source

__all__ = ["TomlProblem", "key_lines", "read_toml"]

_HEADER = re.compile(r"^\s*(\[\[?)\s*(.+?)\s*\]\]?\s*(#.*)?$")
_ASSIGN = re.compile(r"^\s*([^=#\[]+?)\s*=")
_AT = re.compile(r"\(at line (\d+), column (\d+)\)")
_BARE = re.compile(r"[A-Za-z0-9_-]+")


class TomlProblem(Exception):
    """A file that cannot be read or parsed; ``line``/``column`` when TOML gives them."""

    def __init__(
        self, path: Path, message: str, line: int | None = None, column: int | None = None
    ) -> None:
        self.path, self.message, self.line, self.column = path, message, line, column
        super().__init__(message)


def _split_key(text: str) -> list[str] | None:
    """``a."b.c".d`` -> ['a', 'b.c', 'd']; None when it is not a plain key."""
    parts: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] in "\"'":
            end = text.find(text[i], i + 1)
            if end < 0:
                return None
            parts.append(text[i + 1 : end])
            i = end + 1
        else:
            m = _BARE.match(text, i)
            if not m:
                return None
            parts.append(m.group(0))
            i = m.end()
        while i < n and text[i] in " \t":
            i += 1
        if i < n:
            if text[i] != ".":
                return None
            i += 1
    return parts or None


def key_lines(text: str) -> dict[str, int]:
    """Dotted key path -> 1-based line where it is assigned (or its table opens)."""
    lines: dict[str, int] = {}
    table: list[str] = []
    in_multiline: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if in_multiline:
            if line.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        header = _HEADER.match(line)
        if header and "=" not in line.split("]")[0]:
            parts = _split_key(header.group(2))
            if parts is not None:
                table = parts
                lines.setdefault(".".join(table), number)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            parts = _split_key(assign.group(1))
            if parts is not None:
                full = table + parts
                for i in range(len(table) + 1, len(full) + 1):
                    lines.setdefault(".".join(full[:i]), number)
            rest = line[assign.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_multiline = quote
    return lines


def read_toml(path: Path) -> Layer:
    """Parse one file into a Layer whose provenance carries line numbers."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TomlProblem(path, "文件不是 UTF-8 编码") from exc
    except OSError as exc:
        raise TomlProblem(path, f"无法读取文件: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        at = _AT.search(str(exc))
        message = _AT.sub("", str(exc)).replace("(at end of document)", "").strip()
        line, col = (int(at.group(1)), int(at.group(2))) if at else (None, None)
        if at is None and "end of document" in str(exc):
            line, message = max(text.count("\n"), 1), f"{message} (文件意外结束)"
        raise TomlProblem(path, message, line, col) from exc
    name = str(path)
    provenance = {key: Source("file", name, line) for key, line in key_lines(text).items()}
    _fill_missing(data, "", provenance, Source("file", name))
    return Layer(name, data, provenance)


def _fill_missing(
    data: dict[str, object], prefix: str, prov: dict[str, Source], fallback: Source
) -> None:
    # Keys the scanner missed (inline tables, odd quoting) still get the file, without a line.
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        if path not in prov:
            parent = prov.get(prefix) if prefix else None
            prov[path] = parent or fallback
        if isinstance(value, dict):
            _fill_missing(value, path, prov, fallback)

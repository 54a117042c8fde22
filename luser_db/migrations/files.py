"""Migration files on disk: discovery, parsing, markers, checksums and scaffolding.

The format (see docs/migrations.md):

* ``NNNN_name.up.sql`` holds the forward SQL; ``NNNN_name.down.sql``, optional,
  undoes it. ``NNNN`` is the version (any number of digits, compared as an integer).
* A single ``NNNN_name.sql`` is also read: its ``-- migrate:down`` line, if any,
  starts the down part (an optional ``-- migrate:up`` line starts the up part).
* Marker lines: ``-- migrate:no-transaction`` runs that part outside a transaction,
  ``-- lint:allow-destructive`` permits DROP COLUMN / DROP TABLE, and
  ``-- lint:ignore rule-a, rule-b`` silences named lint rules for the file.

The checksum covers the up SQL only (line endings normalised): that is what was
applied. Editing a down part is allowed without repair.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from luser_common import ConfigError, IoError, ValidationError

__all__ = [
    "Migration",
    "Section",
    "checksum",
    "load_migrations",
    "new_migration",
    "parse_markers",
]

_FILE = re.compile(r"^(?P<version>\d+)_(?P<name>[A-Za-z0-9_\-]+?)(?P<kind>\.up|\.down)?\.sql$")
_SECTION = re.compile(r"^\s*--\s*migrate:(up|down)\s*$", re.MULTILINE)
_MARKER = re.compile(r"^\s*--\s*(migrate|lint):([a-z\-]+)(.*)$", re.MULTILINE)
_NEW_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")

NO_TRANSACTION = "no-transaction"
ALLOW_DESTRUCTIVE = "allow-destructive"


@dataclass(frozen=True)
class Section:
    """One direction of a migration: its SQL and whether it runs inside a transaction."""

    sql: str
    path: Path
    transactional: bool = True
    lint_ignore: frozenset[str] = field(default_factory=frozenset)

    @property
    def empty(self) -> bool:
        return not strip_comments(self.sql).strip()


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up: Section
    down: Section | None = None

    @property
    def label(self) -> str:
        """``0001_users``: the version as written in the file name, and the name."""
        return self.up.path.name.split(".", 1)[0]

    @property
    def path(self) -> Path:
        return self.up.path

    @property
    def checksum(self) -> str:
        return checksum(self.up.sql)


def checksum(sql: str) -> str:
    normalised = sql.replace("\r\n", "\n").strip()
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def strip_comments(sql: str) -> str:
    return re.sub(r"^\s*--.*$", "", sql, flags=re.MULTILINE)


def parse_markers(sql: str) -> tuple[bool, frozenset[str]]:
    """``(transactional, ignored lint rules)`` from the marker lines in ``sql``."""
    transactional = True
    ignored: set[str] = set()
    for family, word, rest in _MARKER.findall(sql):
        if family == "migrate" and word == NO_TRANSACTION:
            transactional = False
        elif family == "lint" and word == ALLOW_DESTRUCTIVE:
            ignored |= {"drop-column", "drop-table"}
        elif family == "lint" and word == "ignore":
            ignored |= {r.strip() for r in rest.replace(",", " ").split() if r.strip()}
    return transactional, frozenset(ignored)


def _section(sql: str, path: Path) -> Section:
    transactional, ignored = parse_markers(sql)
    return Section(sql=sql, path=path, transactional=transactional, lint_ignore=ignored)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"迁移文件不是 UTF-8 编码: {path.name}") from exc
    except OSError as exc:
        raise IoError(f"无法读取迁移文件: {path}") from exc


def _split_single(text: str, path: Path) -> tuple[Section, Section | None]:
    marks = list(_SECTION.finditer(text))
    if not marks:
        return _section(text, path), None
    parts: dict[str, str] = {}
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        if mark.group(1) in parts:
            raise ConfigError(f"迁移文件 {path.name} 有多个 -- migrate:{mark.group(1)} 段")
        parts[mark.group(1)] = text[mark.end() : end]
    # Text before the first marker (a header comment) belongs to the up part.
    up = text[: marks[0].start()] + parts.get("up", "")
    down = parts.get("down")
    return _section(up, path), (_section(down, path) if down is not None else None)


def load_migrations(directory: str | Path) -> list[Migration]:
    """Every migration in ``directory``, sorted by version. Raises ConfigError on a bad layout."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ConfigError(f"迁移目录不存在: {folder}", field="database.migrations_dir")
    found: dict[int, dict[str, Path]] = {}
    names: dict[int, str] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise ConfigError(
                f"迁移文件名不符合 NNNN_name.up.sql / NNNN_name.sql 格式: {path.name}"
            )
        version = int(match["version"])
        kind = (match["kind"] or ".single")[1:]
        slot = found.setdefault(version, {})
        if kind in slot or (kind != "down" and ({"up", "single"} & slot.keys())):
            other = next(iter(slot.values()))
            raise ConfigError(f"迁移版本重复: {version} ({other.name}, {path.name})")
        if version in names and names[version] != match["name"]:
            raise ConfigError(f"迁移版本 {version} 的 up/down 文件名不一致: {match['name']}")
        slot[kind] = path
        names[version] = match["name"]
    return [_build(version, names[version], found[version]) for version in sorted(found)]


def _build(version: int, name: str, files: dict[str, Path]) -> Migration:
    if "single" in files:
        if "down" in files:
            raise ConfigError(f"迁移 {files['single'].name} 已是单文件格式, 不能再有 .down.sql")
        up, down = _split_single(_read(files["single"]), files["single"])
        return Migration(version=version, name=name, up=up, down=down)
    if "up" not in files:
        raise ConfigError(f"迁移 {files['down'].name} 缺少对应的 .up.sql 文件")
    down_path = files.get("down")
    down = _section(_read(down_path), down_path) if down_path else None
    return Migration(
        version=version, name=name, up=_section(_read(files["up"]), files["up"]), down=down
    )


def new_migration(directory: str | Path, name: str) -> tuple[Path, Path]:
    """Scaffold ``NNNN_name.up.sql`` and ``.down.sql`` with the next free version."""
    slug = re.sub(r"[\s\-]+", "_", name.strip().lower())
    if not _NEW_NAME.match(slug):
        raise ValidationError(f"迁移名称只能包含小写字母、数字和下划线: {name!r}", field="name")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    existing = load_migrations(folder)
    version = existing[-1].version + 1 if existing else 1
    width = max(4, len(existing[-1].label.split("_", 1)[0]) if existing else 4)
    stem = f"{version:0{width}d}_{slug}"
    up, down = folder / f"{stem}.up.sql", folder / f"{stem}.down.sql"
    up.write_text(
        f"-- {stem}: forward migration. Runs in one transaction;\n"
        "-- add '-- migrate:no-transaction' for CREATE INDEX CONCURRENTLY.\n\n",
        encoding="utf-8",
    )
    down.write_text(f"-- {stem}: undo {stem}.up.sql\n\n", encoding="utf-8")
    return up, down

"""Key rotation: re-encrypt every ENC(...) value in files and the database under a new key.

Files are rewritten by substituting tokens in the text, never by a TOML
round-trip, so comments and layout survive. Every value is decrypted and the
rewritten text re-checked before anything is written; the database rows change
in one transaction before the files are replaced (atomically, one by one).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from luser_common import EncryptionError

from ._crypto import TOKEN_IN_TEXT, KeyRing, is_encrypted
from ._problems import Problem, raise_problems
from .sources.base import Source
from .sources.database import DatabaseSource
from .sources.toml import key_lines

__all__ = ["RotationReport", "rotate_files", "rotate_key"]


@dataclass
class RotationReport:
    """What a rotation changed: values per file, database rows, and the new primary key id."""

    new_kid: str
    files: dict[str, int] = field(default_factory=dict)
    db_rows: int = 0
    dry_run: bool = False

    @property
    def total(self) -> int:
        return sum(self.files.values()) + self.db_rows


def _tokens(node: Any, path: str, out: dict[str, set[str]]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _tokens(value, f"{path}.{key}" if path else key, out)
    elif isinstance(node, list):
        for value in node:
            _tokens(value, path, out)
    elif is_encrypted(node):
        out.setdefault(node, set()).add(path)


def _plan_file(
    path: Path, old: KeyRing, new: KeyRing, problems: list[Problem]
) -> tuple[str, int] | None:
    """The rewritten text and how many tokens changed, or None when nothing to do."""
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.append(Problem("", f"TOML 格式错误: {exc}", Source("file", str(path))))
        return None
    found: dict[str, set[str]] = {}
    _tokens(data, "", found)
    lines = key_lines(text)
    plain: dict[str, tuple[str, str]] = {}
    replacements: dict[str, str] = {}
    for token, keys in found.items():
        key = sorted(keys)[0]
        where = Source("file", str(path), lines.get(key))
        if len(keys) > 1:
            problems.append(Problem(key, "同一密文出现在多个配置项中, 无法确定 AAD", where))
            continue
        try:
            value = old.decrypt(token, key)
        except EncryptionError as exc:
            problems.append(Problem(key, exc.message.split(": ", 1)[-1], where))
            continue
        plain[key] = (value, token)
        replacements[token] = new.encrypt(value, key)
    if not replacements:
        return None
    rewritten = TOKEN_IN_TEXT.sub(lambda m: replacements.get(m.group(0), m.group(0)), text)
    _verify(path, rewritten, plain, new, problems)
    return rewritten, len(replacements)


def _verify(
    path: Path, text: str, plain: dict[str, tuple[str, str]], new: KeyRing, problems: list[Problem]
) -> None:
    """Parse the rewritten text and check every value decrypts to what it was."""
    after: dict[str, set[str]] = {}
    _tokens(tomllib.loads(text), "", after)
    by_key = {next(iter(keys)): token for token, keys in after.items()}
    for key, (value, _) in plain.items():
        token = by_key.get(key)
        if token is None or new.decrypt(token, key) != value:
            problems.append(
                Problem(key, "轮换校验失败: 重写后的值不一致", Source("file", str(path)))
            )


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def rotate_files(
    paths: Iterable[Path], old: KeyRing, new: KeyRing, dry_run: bool = False
) -> dict[str, int]:
    """Re-encrypt the tokens of ``paths``; all-or-nothing across the files."""
    problems: list[Problem] = []
    plans: dict[Path, tuple[str, int]] = {}
    for path in paths:
        plan = _plan_file(path, old, new, problems)
        if plan is not None:
            plans[path] = plan
    if problems:
        raise_problems("密钥轮换失败, 未修改任何文件", problems, EncryptionError)
    if not dry_run:
        for path, (text, _) in plans.items():
            _write_atomic(path, text)
    return {str(path): count for path, (_, count) in plans.items()}


def _targets(config_dir: Path | None, files: Iterable[Path]) -> list[Path]:
    targets = sorted(config_dir.glob("*.toml")) if config_dir and config_dir.is_dir() else []
    return targets + [Path(f) for f in files if Path(f) not in targets]


async def rotate_key(
    config_dir: Path | None,
    old: KeyRing,
    new: KeyRing,
    *,
    files: Iterable[Path] = (),
    db: DatabaseSource | None = None,
    dry_run: bool = False,
) -> RotationReport:
    """Rotate every ``*.toml`` in ``config_dir`` (plus ``files``) and, with ``db``, every
    row of the config table. ``old`` must hold every key in use; ``new``'s first key
    becomes the encrypting key. Keep the old keys in the ring until this returns."""
    decrypt_with = old.with_primary(new)  # already-rotated values still decrypt: reruns are safe
    encrypt_with = new
    targets = _targets(config_dir, files)
    report = RotationReport(new.primary_kid, dry_run=dry_run)
    # Plan (and check) files first, so a bad file stops everything before the database.
    report.files = rotate_files(targets, decrypt_with, encrypt_with, dry_run=True)
    if db is not None and not dry_run:
        report.db_rows = await db.rotate(decrypt_with, encrypt_with)
    if not dry_run:
        rotate_files(targets, decrypt_with, encrypt_with)
    return report

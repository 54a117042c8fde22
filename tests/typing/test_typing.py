"""Runs ``mypy --strict`` on check_models.py: typed models are a tested feature (issue 16).

Two files are checked in one mypy run: check_models.py as written must be clean
(its ``assert_type`` lines hold, and under ``warn_unused_ignores`` every
``# type: ignore[code]`` is needed), and a copy without the ignores must report
exactly the ignored errors, line by line and code by code.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
CHECKED = HERE / "check_models.py"
IGNORE = re.compile(r"\s*# type: ignore\[([a-z, -]+)\]\s*$")
ERROR = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")


def _expected(lines: list[str]) -> set[tuple[int, str]]:
    expected = set()
    for number, line in enumerate(lines, 1):
        found = IGNORE.search(line)
        if found:
            expected |= {(number, code.strip()) for code in found.group(1).split(",")}
    return expected


def _errors(output: str, path: Path) -> set[tuple[int, str]]:
    errors = set()
    for line in output.splitlines():
        found = ERROR.match(line)
        # By file name: the two checked files differ in name, and a name needs no resolving.
        if found and Path(found["path"]).name == path.name:
            errors.add((int(found["line"]), found["code"]))
    return errors


def test_models_type_check_under_mypy_strict(tmp_path: Path) -> None:
    lines = CHECKED.read_text(encoding="utf-8").splitlines()
    expected = _expected(lines)
    assert len(expected) >= 7, "check_models.py lost its expected errors"
    bare = tmp_path / "check_models_bare.py"
    bare.write_text("\n".join(IGNORE.sub("", line) for line in lines) + "\n", encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--warn-unused-ignores",
            "--follow-imports=silent",  # luser_db's own modules are checked by CI's mypy run
            "--show-error-codes",
            "--no-error-summary",
            # Its own cache: CI's plain `mypy` run shares the checkout, and a cache written
            # under other options has replayed stale results into this run before.
            "--cache-dir",
            str(ROOT / ".mypy_cache_typing"),
            str(CHECKED),
            str(bare),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert _errors(output, CHECKED) == set(), output
    assert _errors(output, bare) == expected, output
    assert result.returncode == 1, output  # the bare copy's errors, nothing else went wrong

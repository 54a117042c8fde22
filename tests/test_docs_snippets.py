"""Executable docs: every ```python block in README.md and docs/*.md runs.

Convention: the blocks of one file run in order in one namespace (top-level ``await``
allowed) with luser_db initialised on a fresh, empty database, in a child process of
their own so nothing they set up leaks into this session. A block preceded, on the
line right before its fence, by ``<!-- no-run: reason -->`` is not run; each such block
is reported as a skipped test carrying its reason.

Run one file by hand: ``python -P tests/test_docs_snippets.py docs/orm.md DATABASE_URL``.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import subprocess
import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from luser_db.testing import create_test_database, drop_test_database, server_url

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NO_RUN = re.compile(r"^\s*<!--\s*no-run:\s*(?P<reason>.*?)\s*-->\s*$")
FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int  # of the opening fence, 1-based
    code: str
    no_run: str | None  # the reason, when the block is marked not to run

    @property
    def label(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def snippets(path: Path) -> list[Snippet]:
    """The ```python blocks of a markdown file, in order."""
    found: list[Snippet] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"{path.name}:{i + 1}: unclosed code block"
        if fence["lang"] == "python":
            marker = NO_RUN.match(lines[i - 1]) if i else None
            code = "\n".join(lines[i + 1 : end])
            found.append(Snippet(path, i + 1, code, marker["reason"] if marker else None))
        i = end + 1
    return found


# -- the child process: run one file's blocks ------------------------------------------


async def _run_file(path: Path, url: str) -> None:
    import luser_db

    luser_db.init(url)
    # A real module, registered: dataclasses, pydantic and typing resolve a class's
    # annotations through sys.modules[cls.__module__].
    module = types.ModuleType("__doc_snippet__")
    sys.modules[module.__name__] = module
    namespace: dict[str, object] = module.__dict__
    try:
        for snippet in snippets(path):
            if snippet.no_run is not None:
                continue
            await _run_snippet(snippet, namespace)
    finally:
        await luser_db.close()


async def _run_snippet(snippet: Snippet, namespace: dict[str, object]) -> None:
    try:
        # dont_inherit: this runner's own `from __future__ import annotations` must not
        # turn a snippet's annotations into strings.
        code = compile(
            snippet.code,
            snippet.label,
            "exec",
            flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
            dont_inherit=True,
        )
        result = eval(code, namespace)  # running the docs is the point
        if inspect.iscoroutine(result):
            await result
    except BaseException:
        print(f"doc snippet {snippet.label} failed:\n{snippet.code}\n", file=sys.stderr)
        traceback.print_exc()
        raise SystemExit(1) from None


# -- the tests ---------------------------------------------------------------------------


def _runnable_files() -> list[Path]:
    return [p for p in DOCS if any(s.no_run is None for s in snippets(p))]


def _skipped() -> list[Snippet]:
    return [s for p in DOCS for s in snippets(p) if s.no_run is not None]


def test_docs_have_python_blocks() -> None:
    assert _runnable_files(), "no runnable ```python block found: is the parser broken?"


def test_no_run_markers_give_a_reason() -> None:
    for snippet in _skipped():
        assert snippet.no_run, f"{snippet.label}: <!-- no-run: --> needs a reason"


@pytest.mark.parametrize("path", _runnable_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_doc_file_runs(path: Path) -> None:
    base = server_url()
    url = create_test_database(base, prefix="luser_docs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUSER_")}
    env.update(LUSER_ENV="test", LUSER__DATABASE__URL=url)
    try:
        done = subprocess.run(
            # -P: the script's folder (tests/) must not shadow the packages
            [sys.executable, "-P", __file__, str(path), url],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        drop_test_database(base, url)
    assert done.returncode == 0, done.stderr + done.stdout


@pytest.mark.parametrize("snippet", _skipped(), ids=lambda s: s.label)
def test_no_run_block(snippet: Snippet) -> None:
    pytest.skip(f"no-run: {snippet.no_run}")


if __name__ == "__main__":
    asyncio.run(_run_file(Path(sys.argv[1]).resolve(), sys.argv[2]))

"""Where the service spends its CPU under load: py-spy samples, folded per function.

py-spy (``pip install py-spy``) samples the running uvicorn process while a load run
drives it; idle time (the event loop waiting) is not sampled, so shares are of the
busy time. Two views: *self* (the function itself was on top of the stack) and
*inclusive* (anywhere on the stack, counted once per sample).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
_OURS = ("app/", "luser_common/", "luser_db/", "luser_config/")


def short_file(path: str, root: str) -> str:
    if path.startswith(root):
        return path[len(root) :].lstrip("/")
    marker = "site-packages/"
    if marker in path:
        return path.split(marker, 1)[1]
    match = re.search(r"python3\.\d+/(.*)$", path)
    return match.group(1) if match else path


def _package(name: str) -> str:
    """``luser_db/query.py:QueryBuilder.all`` -> ``luser_db``; stdlib modules by file."""
    head = name.split(":", 1)[0]
    return head.split("/", 1)[0].removesuffix(".py")


def fold(raw: str, root: str) -> tuple[Counter[str], Counter[str], int]:
    """(self samples, inclusive samples, total samples) per ``file:function``."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        names = []
        for frame in stack.split(";"):
            match = _FRAME.match(frame)
            if match:
                names.append(f"{short_file(match['file'], root)}:{match['func']}")
            else:
                names.append(frame)
        if names:
            own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    return own, inclusive, total


def summarize(raw: str, root: str, top: int = 15) -> list[str]:
    own, inclusive, total = fold(raw, root)
    if not total:
        return ["(no samples)"]
    packages: Counter[str] = Counter()
    for name, n in own.items():
        packages[_package(name)] += n
    lines = [f"{total} busy samples. Self time by package / stdlib module:", ""]
    lines += [f"- {n / total:6.1%}  {name}" for name, n in packages.most_common(12)]
    lines += ["", f"Self time by function, top {top}:", ""]
    lines += [f"- {n / total:6.1%}  `{name}`" for name, n in own.most_common(top)]
    lines += [
        "",
        f"Inclusive time, project code (app, luser_*), top {top}. Inclusive counts all"
        " that runs below a function: RequestIdMiddleware, the outermost middleware,"
        " holds the whole app, and its send_with_id holds uvicorn's response writing.",
        "",
    ]
    ours = [(k, v) for k, v in inclusive.most_common() if k.startswith(_OURS)]
    lines += [f"- {n / total:6.1%}  `{name}`" for name, n in ours[:top]]
    return lines


async def profile_service(
    pid: int,
    title: str,
    drive: Callable[[float], Awaitable[Any]],
    seconds: float,
    out: str,
    root: str,
) -> list[str]:
    """Sample process ``pid`` while ``drive(seconds)`` loads it; markdown lines."""
    spy = shutil.which("py-spy")
    if spy is None:
        return ["", "py-spy not installed (`pip install py-spy`): no profile."]
    seconds = max(2, round(seconds))
    proc = await asyncio.create_subprocess_exec(
        spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(seconds),
        "--rate",
        "200",
        "--format",
        "raw",
        "--full-filenames",
        "--output",
        out,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    await asyncio.sleep(0.5)  # let py-spy attach
    await drive(seconds)
    _, err = await proc.communicate()
    if proc.returncode != 0 or not os.path.exists(out):
        return ["", f"py-spy failed: {err.decode()[-500:]}"]
    with open(out, encoding="utf-8", errors="replace") as f:
        raw = f.read()
    return ["", f"### Profile of the service: {title}", "", *summarize(raw, root)]

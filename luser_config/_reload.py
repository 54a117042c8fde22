"""Change detection for hot reload: watchfiles on the config folder, polling the table.

Both only *signal*; the manager reloads, validates and swaps. Each runs as an
asyncio task with a stop event so ``close()`` ends them without leaking threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from luser_common import ConfigError

from .sources.database import DatabaseSource

if TYPE_CHECKING:
    from watchfiles import Change

__all__ = ["DbPoller", "FileWatcher"]

log = logging.getLogger("luser_config")

OnChange = Callable[[str], Awaitable[None]]


class FileWatcher:
    """Watches the folders of ``files`` (editors save by rename, so never the file itself)."""

    def __init__(self, files: Iterable[Path], on_change: OnChange, debounce_ms: int) -> None:
        self._files = {p.resolve() for p in files}
        self._dirs = sorted({p.parent for p in self._files if p.parent.is_dir()})
        self._on_change = on_change
        self._debounce = debounce_ms
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _wanted(self, change: Change, path: str) -> bool:
        return Path(path).resolve() in self._files

    def start(self) -> None:
        if self._dirs and self._task is None:
            _require_watchfiles()
            self._task = asyncio.create_task(self._run(), name="luser_config-watch")

    async def _run(self) -> None:
        from watchfiles import awatch

        async for changes in awatch(
            *self._dirs,
            watch_filter=self._wanted,
            stop_event=self._stop,
            debounce=self._debounce,
            step=20,
            recursive=False,
        ):
            names = ", ".join(sorted({Path(p).name for _, p in changes}))
            try:
                await self._on_change(f"文件变更: {names}")
            except Exception:  # a failing reload must not kill the watcher
                log.exception("配置热加载回调失败")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _require_watchfiles() -> None:
    # watchfiles is an extra (luser[watch]): only hot reload of files needs it.
    try:
        import watchfiles  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            "配置文件热加载需要 watchfiles: pip install 'luser[watch]'", field="hot_reload"
        ) from exc


class DbPoller:
    """Polls the table's (count, sum(version), max(updated_at)) every ``interval`` seconds."""

    def __init__(self, source: DatabaseSource, on_change: OnChange, interval: float) -> None:
        self._source = source
        self._on_change = on_change
        self._interval = interval
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            last = await self._source.signature()
            self._task = asyncio.create_task(self._run(last), name="luser_config-poll")

    async def _run(self, last: tuple[object, ...]) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval)
                return
            try:
                current = await self._source.signature()
            except Exception as exc:  # database briefly away: keep the current config, retry
                log.warning("配置数据库轮询失败, 稍后重试: %s", exc)
                continue
            if current != last:
                last = current
                try:
                    await self._on_change("数据库配置变更")
                except Exception:
                    log.exception("配置热加载回调失败")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

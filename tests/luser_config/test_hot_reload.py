"""Real watchfiles reloads: edit a file, see subscribers called; break it, keep the old config."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from luser_config import ConfigBuilder, ConfigManager, Settings

# Upper bounds for waiting on the file watcher; they only stop a hung test, never assert speed.
WAIT = 30.0


async def _until(check: Callable[[], bool], action: Callable[[], object]) -> None:
    """Repeat ``action`` (a file write) until ``check()``: the watcher may start a moment late."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    next_action = loop.time()
    while not check():
        assert loop.time() < deadline, "no reload seen"
        if loop.time() >= next_action:
            action()
            next_action = loop.time() + 1.5
        await asyncio.sleep(0.05)


async def _manager(cfg_dir) -> ConfigManager:  # type: ignore[no-untyped-def]
    return await ConfigBuilder().env("test").config_dir(cfg_dir).with_hot_reload(True).build()


async def test_edit_file_notifies_subscriber_with_old_and_new(cfg_dir, write) -> None:  # type: ignore[no-untyped-def]
    write("default.toml", "[hot_reload]\ndebounce_ms = 50\n[server]\nport = 1000\n")
    manager = await _manager(cfg_dir)
    calls: list[tuple[int, int]] = []

    async def on_change(old: Settings, new: Settings) -> None:
        calls.append((old.server.port, new.server.port))

    manager.subscribe(on_change)
    try:
        await _until(
            lambda: bool(calls),
            lambda: write(
                "default.toml", "[hot_reload]\ndebounce_ms = 50\n[server]\nport = 2000\n"
            ),
        )
        assert calls[0] == (1000, 2000)
        assert manager.get_config().server.port == 2000
        # the env file appearing later is picked up too
        await _until(
            lambda: manager.get_config().server.port == 3000,
            lambda: write("test.toml", "[server]\nport = 3000\n"),
        )
        assert calls[-1] == (2000, 3000)
    finally:
        await manager.close()


async def test_invalid_change_keeps_last_good_config_and_logs(cfg_dir, write, caplog) -> None:  # type: ignore[no-untyped-def]
    write("default.toml", "[hot_reload]\ndebounce_ms = 50\n[server]\nport = 1000\n")
    manager = await _manager(cfg_dir)
    calls: list[Settings] = []
    manager.subscribe(lambda old, new: calls.append(new))
    try:
        await _until(
            lambda: manager.last_error is not None,
            lambda: write("default.toml", "[server]\nport = = 7\n"),
        )
        assert manager.get_config().server.port == 1000
        assert "配置热加载失败" in caplog.text and "default.toml" in caplog.text

        manager.last_error = None
        await _until(
            lambda: manager.last_error is not None,
            lambda: write("default.toml", "[server]\nport = 70000\n"),
        )
        assert manager.get_config().server.port == 1000
        assert "server.port" in caplog.text
        assert calls == []

        await _until(lambda: bool(calls), lambda: write("default.toml", "[server]\nport = 1500\n"))
        assert calls[-1].server.port == 1500 and manager.last_error is None
    finally:
        await manager.close()


async def test_close_stops_watching(cfg_dir, write) -> None:  # type: ignore[no-untyped-def]
    write("default.toml", "[hot_reload]\ndebounce_ms = 50\n")
    manager = await _manager(cfg_dir)
    tasks = {t.get_name() for t in asyncio.all_tasks()}
    assert "luser_config-watch" in tasks
    await manager.close()
    assert "luser_config-watch" not in {t.get_name() for t in asyncio.all_tasks()}
    await manager.close()  # idempotent

"""A real headless Chromium (Debian's ``chromium`` + ``chromium-driver``) for the site.

The site is served by uvicorn on the test session's own event loop (it shares the
database pool with every other in-process app), so each blocking WebDriver call
runs in a worker thread: the loop keeps serving the browser's requests meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from starlette.applications import Starlette

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_SECONDS = 20
NO_NATIVE_HLS = """
const canPlay = HTMLMediaElement.prototype.canPlayType;
HTMLMediaElement.prototype.canPlayType = function (type) {
  return /mpegurl/i.test(type) ? '' : canPlay.call(this, type);
};
"""
AXE_SOURCE = Path(__file__).parent / "fixtures" / "axe.min.js"
AXE_RUN = """
const done = arguments[arguments.length - 1];
axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
  .then(r => done(r.violations.map(v => ({
     id: v.id, impact: v.impact, help: v.help,
     nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ': ' + n.failureSummary)}))))
  .catch(e => done([{id: 'axe-error', help: String(e)}]));
"""
# Set to docs/screenshots to refresh the committed screenshots (see docs/site.md).
SCREENSHOTS_ENV = "LUSER_SITE_SCREENSHOTS"


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # inside pytest: leave signals alone
        yield


class LiveSite:
    """uvicorn serving an already started app (its lifespan is the fixture's)."""

    def __init__(self, app: Starlette, sock: socket.socket) -> None:
        config = uvicorn.Config(app, lifespan="off", log_level="warning")
        self.server = _Server(config)
        self.sock = sock
        self.task: asyncio.Task[None] | None = None
        self.url = ""

    async def start(self) -> str:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        deadline = time.monotonic() + 30
        while not self.server.started:  # a poll with a deadline: uvicorn offers no event
            if self.task.done() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            await asyncio.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task


def start_chromium() -> WebDriver:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        raise AssertionError(
            f"{', '.join(missing)} not found: apt-get install -y chromium chromium-driver"
        )
    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--autoplay-policy=no-user-gesture-required",
        "--mute-audio",
        "--lang=zh-CN",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


class Browser:
    """Async wrappers around the WebDriver calls a journey needs."""

    def __init__(self, driver: WebDriver, base_url: str, shots: Path) -> None:
        self.driver = driver
        self.base_url = base_url
        self.shots = shots

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def get(self, path: str) -> None:
        await self._run(self.driver.get, self.base_url + path)

    async def find(self, css: str) -> WebElement:
        element: WebElement = await self._run(self.driver.find_element, By.CSS_SELECTOR, css)
        return element

    async def fill(self, css: str, value: str) -> None:
        element = await self.find(css)
        await self._run(element.clear)
        await self._run(element.send_keys, value)

    async def choose_file(self, css: str, path: Path) -> None:
        """Pick ``path`` in the file input ``css``, as the file dialog would."""
        await self._run((await self.find(css)).send_keys, str(path.resolve()))

    async def click(self, css: str) -> None:
        await self._run((await self.find(css)).click)

    async def script(self, js: str, *args: Any) -> Any:
        return await self._run(self.driver.execute_script, js, *args)

    async def wait_until(self, js: str, *args: Any) -> Any:
        """Poll a JS predicate in the page until it is truthy (WebDriverWait's deadline)."""

        def wait() -> Any:
            return WebDriverWait(self.driver, WAIT_SECONDS, poll_frequency=0.1).until(
                lambda d: d.execute_script(js, *args)
            )

        return await self._run(wait)

    async def wait_for_path(self, prefix: str) -> None:
        await self.wait_until(
            "return location.pathname.startsWith(arguments[0])"
            " && document.readyState == 'complete'",
            prefix,
        )

    async def text(self) -> str:
        body = await self.find("body")
        return str(await self._run(lambda: body.text))

    @property
    def current_url(self) -> str:
        return str(self.driver.current_url)

    async def accept_confirm(self) -> None:
        def accept() -> None:
            WebDriverWait(self.driver, WAIT_SECONDS).until(lambda d: d.switch_to.alert).accept()

        await self._run(accept)

    @contextlib.asynccontextmanager
    async def without_native_hls(self) -> AsyncIterator[None]:
        """Pages opened inside the block see a browser that cannot play HLS natively."""
        added = await self._run(
            self.driver.execute_cdp_cmd,
            "Page.addScriptToEvaluateOnNewDocument",
            {"source": NO_NATIVE_HLS},
        )
        try:
            yield
        finally:
            await self._run(
                self.driver.execute_cdp_cmd,
                "Page.removeScriptToEvaluateOnNewDocument",
                {"identifier": added["identifier"]},
            )

    @contextlib.asynccontextmanager
    async def other_tab(self) -> AsyncIterator[None]:
        """Inside the block the browser works in a new tab (a phone scanning the QR code);
        afterwards the tab is closed and the first one is back in front."""
        first = self.driver.current_window_handle
        await self._run(self.driver.switch_to.new_window, "tab")
        try:
            yield
        finally:
            await self._run(self.driver.close)
            await self._run(self.driver.switch_to.window, first)

    async def open_url(self, url: str) -> None:
        """A page outside the site (the sandbox cashier or scan page)."""
        await self._run(self.driver.get, url)

    async def tab_to(self, css: str, limit: int = 30) -> int:
        """Press Tab until ``css`` has the focus; how many presses it took."""
        target = await self.find(css)

        def press() -> int:
            for count in range(1, limit + 1):
                ActionChains(self.driver).send_keys(Keys.TAB).perform()
                if self.driver.switch_to.active_element == target:
                    return count
            raise AssertionError(f"{css} not reached with {limit} Tab presses")

        return int(await self._run(press))

    async def double_click(self, css: str) -> None:
        element = await self.find(css)
        await self._run(lambda: ActionChains(self.driver).double_click(element).perform())

    async def accessibility_violations(self) -> list[dict[str, Any]]:
        """WCAG 2 A and AA violations on the current page, by the vendored axe-core."""

        def run() -> list[dict[str, Any]]:
            self.driver.execute_script(AXE_SOURCE.read_text())
            self.driver.set_script_timeout(WAIT_SECONDS)
            found: list[dict[str, Any]] = self.driver.execute_async_script(AXE_RUN)
            return found

        return await self._run(run)

    async def screenshot(self, name: str) -> None:
        await self._run(self.driver.save_screenshot, str(self.shots / f"{name}.png"))

    async def resize(self, width: int, height: int) -> None:
        await self._run(self.driver.set_window_size, width, height)


def screenshot_dir(tmp: Path) -> Path:
    chosen = os.environ.get(SCREENSHOTS_ENV)
    folder = Path(chosen) if chosen else tmp
    folder.mkdir(parents=True, exist_ok=True)
    return folder

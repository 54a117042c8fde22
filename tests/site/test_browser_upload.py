"""An operator uploads a video from the console in a real headless Chromium, to the
sandbox Tencent VOD (a different origin, so the browser's CORS preflight is part of
it): the draft is created, the file goes from the browser to the sandbox with the
upload signature the service handed out, the sandbox's "upload finished" callback
makes the video ready, the operator publishes it and it plays in the catalog."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from app.sandbox.vod_sandbox import SandboxTencentVod
from app.settings import AppConfig, vod_config_model
from app.vod.registry import VodRegistry

from .browser import Browser, LiveSite, screenshot_dir, start_chromium
from .conftest import CLIP, PASSWORD, site_url
from .test_browser import PLAYING


@pytest.fixture(scope="module")
def vod_sandbox(site_stubs: object) -> Iterator[SandboxTencentVod]:
    """The sandbox mode's Tencent VOD stand-in (site_stubs clears the proxy variables)."""
    stand_in = SandboxTencentVod()
    stand_in.start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture(scope="module")
async def upload_app(
    site_app: Starlette, site_config: AppConfig, vod_sandbox: SandboxTencentVod
) -> AsyncIterator[tuple[Starlette, socket.socket]]:
    """The site app (one per session: its lifespan owns the process's database pool)
    with real VOD providers, the Tencent section aimed at the sandbox, for the media
    service (upload credentials, callbacks) and the player; served on its own socket."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    tencent = vod_sandbox.sandbox_config(site_url(sock))
    vod = vod_config_model().model_validate({**dict(site_config.vod), "tencent": tencent})
    real = VodRegistry(vod)
    services = site_app.state.services
    saved = services.media.providers, services.player.providers
    services.media.providers = services.player.providers = real
    try:
        yield site_app, sock
    finally:
        services.media.providers, services.player.providers = saved
        await real.aclose()
        sock.close()


@pytest.fixture(scope="module")
async def upload_browser(
    upload_app: tuple[Starlette, socket.socket], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Browser]:
    site = LiveSite(*upload_app)
    url = await site.start()
    driver = start_chromium()
    try:
        yield Browser(driver, url, screenshot_dir(Path(tmp_path_factory.mktemp("shots"))))
    finally:
        driver.quit()
        await site.stop()


async def test_operator_uploads_from_the_browser(
    upload_browser: Browser,
    upload_app: tuple[Starlette, socket.socket],
    vod_sandbox: SandboxTencentVod,
) -> None:
    browser, (app, _) = upload_browser, upload_app
    tag = uuid.uuid4().hex[:6]
    admin = await app.state.services.accounts.create_admin(f"up{tag}@example.com", PASSWORD)
    await browser.get("/login")
    await browser.fill("#account", admin.email)
    await browser.fill("#password", PASSWORD)
    await browser.click("form[action='/login'] button[type=submit]")
    await browser.wait_until("return document.body.innerText.includes('运营后台')")

    # A draft without a media id: the console goes on to its upload page.
    await browser.get("/console/videos")
    await browser.click("details.card summary")
    await browser.fill("#new-title", f"上传 {tag}")
    await browser.fill("#new-level", "0")
    await browser.click("form[action='/console/videos'] button[type=submit]")
    await browser.wait_until("return document.body.innerText.includes('已创建 (草稿)')")
    page = await app.state.services.catalog.admin_videos(1, 1, q=f"上传 {tag}")
    draft = page.items[0]
    assert draft.media_id is None and draft.media_status == "none"
    await browser.wait_for_path(f"/console/videos/{draft.id}/upload")
    assert await browser.accessibility_violations() == []

    await browser.choose_file("#upload-file", CLIP)
    await browser.screenshot("console-upload")
    await browser.click("#upload-form button[type=submit]")
    await browser.wait_until(
        "return document.getElementById('upload-status').textContent.includes('视频已就绪')"
    )
    await browser.screenshot("console-upload-done")
    assert await browser.accessibility_violations() == []

    video = await app.state.services.catalog.video(draft.id)
    assert video.media_status == "ready" and video.media_id is not None
    assert vod_sandbox.uploads[video.media_id] == CLIP.read_bytes()
    assert video.duration_seconds == 8

    await browser.get(f"/console/videos?q={tag}")
    await browser.click(f"form[action='/console/videos/{draft.id}/publish'] button")
    published = f"视频 #{draft.id} 已发布"  # the flash; the status filter also says 已发布
    await browser.wait_until("return document.body.innerText.includes(arguments[0])", published)
    await browser.get(f"/videos/{draft.id}")
    src = str(await browser.script("return document.getElementById('player').src"))
    assert src.startswith(f"http://{vod_sandbox.endpoint}/vod/media/{video.media_id}.mp4")
    assert float(await browser.wait_until(PLAYING)) > 1

"""Journeys in a real headless Chromium: a visitor signs up, browses, watches the
preview, subscribes with sandbox WeChat Pay (QR page) and sandbox Alipay (cashier
redirect), then watches the full video; an operator publishes a video that then
appears in the catalog, and refunds an order, which shortens the subscription.

Screenshots of every page go to a temporary folder, or to docs/screenshots with
``LUSER_SITE_SCREENSHOTS=docs/screenshots`` (see docs/site.md).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest
from starlette.applications import Starlette

from app.accounts.models import User
from app.commerce.models import Order
from app.open_api import manage, routing_config
from app.sandbox.cashier import SandboxAlipay, SandboxWechat

from .browser import Browser, LiveSite, screenshot_dir, start_chromium
from .conftest import PASSWORD, SiteAccount, make_plan, make_video, pay_with_wechat

# Starts playing (muted, so autoplay rules allow it) and reports the clock once it moved.
PLAYING = """
const v = document.getElementById('player');
if (!v) return false;
if (v.paused) { v.muted = true; v.play().catch(() => {}); }
return v.currentTime > 1 ? v.currentTime : false;
"""


@pytest.fixture(scope="module")
async def browser(
    site_app: Starlette, site_socket: socket.socket, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Browser]:
    site = LiveSite(site_app, site_socket)
    url = await site.start()
    driver = start_chromium()
    try:
        yield Browser(driver, url, screenshot_dir(Path(tmp_path_factory.mktemp("shots"))))
    finally:
        driver.quit()
        await site.stop()


async def _watch(browser: Browser, video_id: int) -> tuple[str, float]:
    await browser.get(f"/videos/{video_id}")
    src = str(await browser.script("return document.getElementById('player').src"))
    played = float(await browser.wait_until(PLAYING))
    return src, played


async def _order_of(email: str) -> Order:
    user = await User.find_first("select * from users where email = ?", email)
    assert user is not None
    order = await Order.query().where("user_id = ?", user.id).order_by("id desc").first()
    assert order is not None
    return order


async def test_subscriber_journey(
    browser: Browser, site_app: Starlette, site_stubs: tuple[SandboxAlipay, SandboxWechat]
) -> None:
    ali, wx = site_stubs
    tag = uuid.uuid4().hex[:6]
    catalog = site_app.state.services.catalog
    nature = await catalog.create_category(f"自然 {tag}", f"nature-{tag}")
    city = await catalog.create_category(f"城市 {tag}", f"city-{tag}")
    video = await make_video(
        site_app, title=f"海边日落 {tag}", description="一段八秒的片子", category_id=nature.id
    )
    hls_video = await make_video(
        site_app,
        title=f"城市夜景 {tag}",
        required_level=0,
        category_id=city.id,
        media_id=f"hls-{tag}",
    )
    plan = await make_plan(site_app, name=f"月度会员 {tag}", price_fen=1990)

    await browser.get("/")
    await browser.screenshot("home")
    await browser.resize(390, 844)
    await browser.screenshot("home-phone")
    await browser.resize(1280, 900)

    email = f"v{tag}@example.com"
    await browser.get("/signup")
    await browser.fill("#account", email)
    await browser.fill("#nickname", "小鹿")
    await browser.fill("#password", PASSWORD)
    await browser.screenshot("signup")
    await browser.click("form[action='/signup'] button[type=submit]")
    await browser.wait_until("return document.body.innerText.includes('退出 (小鹿)')")

    await browser.fill("#q", tag)
    await browser.click("form[role=search] button")
    await browser.wait_until("return location.search.includes(arguments[0])", tag)
    await browser.screenshot("search")
    await browser.click(f"a[href='/videos/{video.id}']")
    await browser.wait_for_path(f"/videos/{video.id}")
    src, played = await _watch(browser, video.id)
    assert "preview=4" in src and played > 1
    await browser.screenshot("video-preview")
    # The 8 s clip stops at the 4 s preview, and says so.
    stopped = "const v = document.getElementById('player'); return v.paused && v.currentTime >= 4"
    await browser.wait_until(stopped)
    assert "试看结束" in await browser.text()

    # WeChat native: the QR page, a sandbox scan, the page notices the payment.
    await browser.get("/plans")
    await browser.screenshot("plans")
    form = f"form[action='/checkout']:has(input[name=plan_id][value='{plan.id}'])"
    await browser.click(f"{form} input[value=wechat]")
    await browser.double_click(f"{form} button[type=submit]")  # an impatient buyer
    await browser.wait_for_path("/orders/")
    qr_loaded = "const i = document.querySelector('.qr img'); return i && i.naturalWidth > 0"
    await browser.wait_until(qr_loaded)
    await browser.screenshot("order-wechat-qr")
    order = await _order_of(email)
    assert await Order.query().where("user_id = ?", order.user_id).count() == 1
    attempts = await site_app.state.services.commerce.orders.attempts(order.id)
    code_url = str(attempts[-1].launch["code_url"])
    assert code_url.startswith(wx.base_url + "/scan/")
    async with browser.other_tab():  # the buyer's phone opens the QR code's page
        await browser.open_url(code_url)
        await browser.click("#pay")
        await browser.wait_until("return !!document.getElementById('result')")
        assert "支付成功" in await browser.text()
    await browser.wait_until("return document.body.innerText.includes('支付成功')")
    await browser.screenshot("order-paid")

    src, played = await _watch(browser, video.id)
    assert "full=1" in src and played > 1
    await browser.screenshot("video-full")

    # HLS: this Chromium plays it natively; one without native HLS uses the vendored hls.js.
    engine = "return document.getElementById('player').dataset.engine"
    await browser.get(f"/videos/{hls_video.id}")
    assert float(await browser.wait_until(PLAYING)) > 1
    assert await browser.script(engine) == "native"
    async with browser.without_native_hls():
        await browser.get(f"/videos/{hls_video.id}")
        assert float(await browser.wait_until(PLAYING)) > 1
        assert await browser.script(engine) == "hls.js"

    # Alipay: the browser goes to the sandbox cashier, the buyer presses 支付 there,
    # the cashier notifies the service and links back to the site.
    await browser.get("/plans")
    await browser.click(f"{form} input[value=alipay]")
    await browser.click(f"{form} button[type=submit]")
    site_port = browser.base_url.rsplit(":", 1)[1]
    await browser.wait_until("return location.port != arguments[0]", site_port)
    assert browser.current_url.startswith(ali.gateway_url)
    assert "支付宝收银台" in await browser.text()
    await browser.screenshot("alipay-cashier")
    await browser.click("#pay")
    await browser.wait_until("return !!document.getElementById('result')")
    await browser.click("a[href$='/me/orders']")  # 返回商户
    await browser.wait_for_path("/me/orders")
    assert (await browser.text()).count("已支付") == 2
    second = await _order_of(email)
    assert second.id != order.id and second.status == "paid"
    await browser.get(f"/orders/{second.id}")
    assert "支付成功" in await browser.text()

    await browser.get("/me/orders")
    await browser.screenshot("my-orders")
    await browser.get("/me/subscription")
    assert "会员有效" in await browser.text()
    await browser.screenshot("my-subscription")

    await browser.get("/me/keys")
    await browser.fill("#name", "我的脚本")
    await browser.click("form[action='/me/keys'] button[type=submit]")
    await browser.wait_until("return !!document.getElementById('new-key')")
    await browser.screenshot("my-keys")

    await browser.get("/no/such/page")
    await browser.screenshot("not-found")


async def test_operator_journey(
    browser: Browser,
    site_app: Starlette,
    site_admin: SiteAccount,
    site_stubs: tuple[SandboxAlipay, SandboxWechat],
) -> None:
    tag = uuid.uuid4().hex[:6]
    # A subscriber with a paid order for the refund.
    plan = await make_plan(site_app, name=f"季度会员 {tag}", duration_days=90, price_fen=4990)
    buyer = await site_app.state.services.accounts.register(
        email=f"b{tag}@example.com", phone=None, password=PASSWORD
    )
    checkout = await site_app.state.services.commerce.orders.create(
        buyer.id, plan.id, "wechat", "native"
    )
    assert (await pay_with_wechat(site_app, site_stubs[1], checkout.order.id)).is_success
    before = await site_app.state.services.commerce.subscriptions.status(buyer.id)

    await browser.get("/")
    if "退出" in await browser.text():
        await browser.click("form[action='/logout'] button")
        await browser.wait_until("return document.body.innerText.includes('已退出登录')")
    await browser.get("/login")
    await browser.fill("#account", site_admin.account)
    await browser.fill("#password", site_admin.password)
    await browser.screenshot("login")
    await browser.click("form[action='/login'] button[type=submit]")
    await browser.wait_until("return document.body.innerText.includes('运营后台')")

    # Create a draft in the console, then publish it.
    await browser.get("/console/videos")
    await browser.click("details.card summary")
    await browser.fill("#new-title", f"新片 {tag}")
    await browser.fill("#new-description", "运营后台创建")
    await browser.fill("#new-media", f"m-{tag}")
    await browser.fill("#new-duration", "8")
    await browser.fill("#new-preview", "4")
    await browser.fill("#new-level", "1")
    await browser.screenshot("console-video-new")
    await browser.click("form[action='/console/videos'] button[type=submit]")
    await browser.wait_until("return document.body.innerText.includes('已创建 (草稿)')")
    page = await site_app.state.services.catalog.admin_videos(1, 1, q=f"新片 {tag}")
    draft = page.items[0]
    assert draft.status == "draft" and draft.media_id == f"m-{tag}"
    await browser.get(f"/console/videos?q={tag}")
    await browser.screenshot("console-videos")
    await browser.click(f"#video-{draft.id} form[action$='/publish'] button")
    await browser.wait_until("return document.body.innerText.includes('已发布')")
    await browser.get(f"/?q={tag}")
    assert f"新片 {tag}" in await browser.text()

    await browser.get(f"/console/users?q=b{tag}")
    await browser.screenshot("console-users")
    await browser.get(f"/console/users/{buyer.id}")
    await browser.screenshot("console-user")
    await browser.get("/console/categories")
    await browser.screenshot("console-categories")
    await browser.get("/console/plans")
    await browser.screenshot("console-plans")
    await browser.get("/console/revenue")
    await browser.screenshot("console-revenue")
    bill_id = await _fill_console_tables(site_app, site_stubs[0], site_admin.id)
    for path, shot in (
        ("/console/bills", "console-bills"),
        (f"/console/bills/{bill_id}", "console-bill"),
        ("/console/open/channels", "console-open-channels"),
        ("/console/open/prices", "console-open-prices"),
        ("/console/open/tokens", "console-open-tokens"),
        ("/console/open/usage", "console-open-usage"),
    ):
        await browser.get(path)
        await browser.screenshot(shot)

    await browser.get("/console/orders?status=paid")
    await browser.screenshot("console-orders")
    await browser.fill(f"#reason-{checkout.order.id}", "用户申请")
    await browser.click(f"#order-{checkout.order.id} button")
    await browser.accept_confirm()
    await browser.wait_until("return document.body.innerText.includes('已退款')")
    after = await site_app.state.services.commerce.subscriptions.status(buyer.id)
    assert before.access_ends_at is not None
    assert after.access_ends_at is None or after.access_ends_at < before.access_ends_at


ACCESSIBILITY_PAGES = [
    "/",
    "/?q=no-such-video",
    "/signup",
    "/login",
    "/plans",
    "/no/such/page",
    "/me/orders",
    "/me/subscription",
    "/console/videos",
    "/console/users",
    "/console/orders?status=paid",
    "/console/categories",
    "/console/plans",
    "/me/keys",
    "/console/revenue",
    "/console/bills",
    "/console/open/channels",
    "/console/open/prices",
    "/console/open/tokens",
    "/console/open/usage",
]


async def _fill_console_tables(app: Starlette, ali: SandboxAlipay, admin_id: int) -> int:
    """A row in every open API table and a bill with findings; the bill's id."""
    tag = uuid.uuid4().hex[:6]
    open_api = app.state.services.open_api
    await routing_config.save_channel({"name": f"通道 {tag}", "provider": "tencent"}, open_api.box)
    await routing_config.set_price(f"video.a{tag}", 1_000_000, "无障碍")
    await routing_config.save_group(f"g{tag}", "0.9", "分组")
    await manage.create_token(admin_id, manage.TokenSpec(name="axe"), pepper=open_api.pepper)
    day = date(2020, 1, 1)
    ali.publish_bill(day.isoformat(), [("trade", f"PNOTOURS{tag}", "1.00", None)])
    report = await app.state.services.commerce.reconciler.reconcile_bill("alipay", day, admin_id)
    return int(report.bill_id)


async def test_pages_pass_axe_wcag_aa(
    browser: Browser,
    site_app: Starlette,
    site_admin: SiteAccount,
    site_stubs: tuple[SandboxAlipay, SandboxWechat],
) -> None:
    """Labels, names, landmarks and colour contrast (WCAG 2.1 A/AA) on every page kind,
    as an admin so the console and the member pages are included."""
    video = await make_video(site_app, title="无障碍检查")
    bill_id = await _fill_console_tables(site_app, site_stubs[0], site_admin.id)
    await browser.get("/")
    if "退出" in await browser.text():
        await browser.click("form[action='/logout'] button")
        await browser.wait_until("return document.body.innerText.includes('已退出登录')")
    await browser.get("/login")
    await browser.fill("#account", site_admin.account)
    await browser.fill("#password", site_admin.password)
    await browser.click("form[action='/login'] button[type=submit]")
    await browser.wait_until("return document.body.innerText.includes('运营后台')")
    found = {}
    for path in [
        *ACCESSIBILITY_PAGES,
        f"/videos/{video.id}",
        f"/console/users/{site_admin.id}",
        f"/console/bills/{bill_id}",
    ]:
        await browser.get(path)
        violations = await browser.accessibility_violations()
        if violations:
            found[path] = violations
    assert found == {}


async def test_forms_are_keyboard_reachable_with_visible_focus(browser: Browser) -> None:
    await browser.get("/")
    if "退出" in await browser.text():
        await browser.click("form[action='/logout'] button")
        await browser.wait_until("return document.body.innerText.includes('已退出登录')")
    await browser.get("/signup")
    for css in ("#account", "#nickname", "#password", "form[action='/signup'] button"):
        await browser.tab_to(css)
        style = await browser.script(
            "const s = getComputedStyle(document.activeElement);"
            " return [s.outlineStyle, s.outlineWidth];"
        )
        assert style == ["solid", "3px"], (css, style)  # the site's own focus ring

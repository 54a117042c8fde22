"""The site over HTTP without a browser: pages, forms and every kind of bad input.

Each bad input must end in a clear Chinese page with a 4xx status, never a 500, and
write nothing.
"""

from __future__ import annotations

import re
import time
import uuid

import httpx
import itsdangerous.timed
import pytest
from starlette.applications import Starlette

from app.accounts.models import User
from app.catalog.models import Video
from app.commerce.models import Order
from app.sandbox.cashier import SandboxAlipay, SandboxWechat
from app.settings import FeaturesConfig
from app.site.session import SALT, site_key
from luser_db import Db

from .conftest import (
    PASSWORD,
    SiteAccount,
    client_for,
    csrf_of,
    log_in,
    make_plan,
    make_video,
    pay_with_wechat,
    sign_up,
    unique_email,
)


async def test_home_lists_published_videos_and_searches(
    browser_like: httpx.AsyncClient, site_app: Starlette
) -> None:
    tag = uuid.uuid4().hex[:8]
    shown = await make_video(site_app, title=f"可见 {tag}")
    hidden = await make_video(site_app, title=f"草稿 {tag}", publish=False)
    r = await browser_like.get("/", params={"q": tag})
    assert r.status_code == 200
    assert f"/videos/{shown.id}" in r.text
    assert f"/videos/{hidden.id}" not in r.text
    assert "<title>搜索: " in r.text


async def test_catalog_paginates(browser_like: httpx.AsyncClient, site_app: Starlette) -> None:
    tag = uuid.uuid4().hex[:8]
    for n in range(13):  # one more than a page
        await make_video(site_app, title=f"分页 {tag} {n:02d}")
    first = await browser_like.get("/", params={"q": tag})
    assert first.text.count('class="tile"') == 12
    assert 'rel="next"' in first.text
    second = await browser_like.get("/", params={"q": tag, "page": "2"})
    assert second.text.count('class="tile"') == 1


async def test_script_in_titles_and_search_renders_as_text(
    browser_like: httpx.AsyncClient, site_app: Starlette
) -> None:
    evil = "<script>alert('x')</script>"
    video = await make_video(site_app, title=evil, description=evil)
    page = await browser_like.get(f"/videos/{video.id}")
    search = await browser_like.get("/", params={"q": evil})
    for r in (page, search):
        assert r.status_code == 200
        assert evil not in r.text
        assert "&lt;script&gt;" in r.text


async def test_signup_logs_in_and_escapes_the_nickname(
    browser_like: httpx.AsyncClient,
) -> None:
    r = await sign_up(browser_like, nickname="<b>我</b>")
    assert r.status_code == 303
    home = await browser_like.get("/")
    assert "退出 (&lt;b&gt;我&lt;/b&gt;)" in home.text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"account": ""}, "请提供邮箱或手机号之一"),
        ({"password": ""}, "password"),
        ({"password": "x" * 300}, "password"),
        ({"nickname": "长" * 40}, "nickname"),
        ({"account": "not-an-account"}, "手机号"),
    ],
)
async def test_signup_bad_input_is_a_clear_page_and_writes_nothing(
    browser_like: httpx.AsyncClient, fields: dict[str, str], message: str
) -> None:
    before = await User.query().count()
    r = await sign_up(browser_like, **fields)
    assert r.status_code in (400, 409, 422), r.text
    assert message in r.text
    assert 'role="alert"' in r.text
    assert await User.query().count() == before


async def test_oversized_form_is_refused_with_a_page(browser_like: httpx.AsyncClient) -> None:
    token = await csrf_of(browser_like, "/signup")
    r = await browser_like.post(
        "/signup", data={"csrf_token": token, "account": "a" * 20_000, "password": "p"}
    )
    assert r.status_code == 413
    assert "<title>" in r.text and "请求体" in r.text


async def test_forged_or_missing_csrf_token_is_a_403_page(
    browser_like: httpx.AsyncClient,
) -> None:
    token = await csrf_of(browser_like, "/login")
    forged = token[:-4] + ("0000" if not token.endswith("0000") else "1111")
    before = await User.query().count()
    for data in (
        {"csrf_token": forged},
        {},
        {"csrf_token": "x.y"},
    ):
        r = await browser_like.post(
            "/signup", data={**data, "account": unique_email(), "password": PASSWORD}
        )
        assert r.status_code == 403
        assert "CSRF" in r.text and "请刷新页面后重试" in r.text
    assert await User.query().count() == before


async def test_a_token_from_another_browser_does_not_pass(
    browser_like: httpx.AsyncClient, site_app: Starlette
) -> None:
    async with client_for(site_app) as other:
        theirs = await csrf_of(other, "/login")
    await csrf_of(browser_like, "/login")  # our own cookie, a different token
    r = await browser_like.post(
        "/login", data={"csrf_token": theirs, "account": "a@b.cn", "password": "x"}
    )
    assert r.status_code == 403


async def test_wrong_password_says_so(
    browser_like: httpx.AsyncClient, site_admin: SiteAccount
) -> None:
    token = await csrf_of(browser_like)
    r = await browser_like.post(
        "/login",
        data={"csrf_token": token, "account": site_admin.account, "password": "wrong-pass"},
    )
    assert r.status_code == 401
    assert "账号或密码错误" in r.text or "密码" in r.text


async def test_expired_session_asks_to_log_in_again(
    browser_like: httpx.AsyncClient, site_app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = unique_email()
    await sign_up(browser_like, account=account)
    # The same login, but signed as if long ago: older than the session lifetime.
    long_ago = time.time() - site_app.state.config.jwt.refresh_ttl_seconds - 60
    cookie = browser_like.cookies["luser_session"]
    key = site_key(site_app.state.config, SALT)
    serializer = itsdangerous.URLSafeTimedSerializer(key, salt=SALT)
    tokens = serializer.loads(cookie)
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: long_ago)
    stale = serializer.dumps(tokens)
    monkeypatch.undo()
    browser_like.cookies.set("luser_session", stale)
    r = await browser_like.get("/me/orders")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    page = await browser_like.get("/")
    assert "登录" in page.text and "退出" not in page.text


async def test_tampered_or_revoked_session_is_logged_out(
    browser_like: httpx.AsyncClient, site_app: Starlette
) -> None:
    account = unique_email()
    await sign_up(browser_like, account=account)
    cookie = browser_like.cookies["luser_session"]
    browser_like.cookies.set("luser_session", cookie[:-3] + "abc")
    r = await browser_like.get("/")
    assert r.status_code == 200 and "登录已过期" in r.text
    # Logged out everywhere (the accounts service): the next page knows.
    browser_like.cookies.set("luser_session", cookie)
    user = await User.find_first("select * from users where email = ?", account)
    assert user is not None
    await site_app.state.services.accounts.set_status(user.id, "disabled")
    r = await browser_like.get("/")
    assert "登录已过期" in r.text and "退出" not in r.text


async def test_someone_elses_order_is_not_found(
    browser_like: httpx.AsyncClient, site_app: Starlette
) -> None:
    plan = await make_plan(site_app)
    await sign_up(browser_like)
    token = await csrf_of(browser_like, "/plans")
    r = await browser_like.post(
        "/checkout", data={"csrf_token": token, "plan_id": str(plan.id), "provider": "wechat"}
    )
    assert r.status_code == 303
    order_path = r.headers["location"]
    assert (await browser_like.get(order_path + "/qr.png")).headers["content-type"] == "image/png"
    async with client_for(site_app) as stranger:
        stranger.headers["accept"] = "text/html"
        await sign_up(stranger)
        for path in (order_path, order_path + "/qr.png", order_path + "/status"):
            seen = await stranger.get(path)
            assert seen.status_code == 404, path
            assert "订单不存在" in seen.text


async def test_wechat_h5_checkout_redirects_to_h5_url(
    browser_like: httpx.AsyncClient, site_app: Starlette
) -> None:
    plan = await make_plan(site_app)
    await sign_up(browser_like)
    token = await csrf_of(browser_like, "/plans")
    data = {"csrf_token": token, "plan_id": str(plan.id), "provider": "wechat-h5"}
    r = await browser_like.post("/checkout", data=data)
    assert r.status_code == 303, r.text
    orders = site_app.state.services.commerce.orders
    order = await Order.query().order_by("id desc").first()
    assert order is not None
    (attempt,) = await orders.attempts(order.id)
    assert attempt.method == "h5"
    assert r.headers["location"] == attempt.launch["h5_url"]


async def test_alipay_precreate_shows_a_qr_png(
    browser_like: httpx.AsyncClient, site_app: Starlette
) -> None:
    plan = await make_plan(site_app)
    await sign_up(browser_like)
    token = await csrf_of(browser_like, "/plans")
    data = {"csrf_token": token, "plan_id": str(plan.id), "provider": "alipay-qr"}
    r = await browser_like.post("/checkout", data=data)
    assert r.status_code == 303, r.text
    order_path = r.headers["location"]
    assert order_path.startswith("/orders/")
    page = await browser_like.get(order_path)
    assert "请用支付宝扫码支付" in page.text
    png = await browser_like.get(order_path + "/qr.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    attempts = await site_app.state.services.commerce.orders.attempts(int(order_path.split("/")[2]))
    assert attempts[-1].method == "precreate" and attempts[-1].launch["qr_code"]


async def test_bad_checkout_input_writes_no_order(
    browser_like: httpx.AsyncClient, site_app: Starlette
) -> None:
    await sign_up(browser_like)
    token = await csrf_of(browser_like, "/plans")
    before = await Order.query().count()
    for data in (
        {"plan_id": "abc", "provider": "wechat"},
        {"plan_id": "99999999", "provider": "wechat"},
        {"plan_id": "1", "provider": "paypal"},
        {"plan_id": "9" * 30, "provider": "alipay"},
        {"plan_id": "1", "provider": "wechat-jsapi"},
        {"plan_id": "1", "provider": "<script>alert(1)</script>"},
    ):
        r = await browser_like.post("/checkout", data={"csrf_token": token, **data})
        assert 400 <= r.status_code < 500, (data, r.text)
        assert 'role="alert"' in r.text
    assert await Order.query().count() == before


async def test_video_the_user_may_not_watch_says_why(
    browser_like: httpx.AsyncClient, site_app: Starlette
) -> None:
    members_only = await make_video(site_app, preview_seconds=0)
    anonymous = await browser_like.get(f"/videos/{members_only.id}")
    assert "登录后即可试看" in anonymous.text and "<video" not in anonymous.text
    await sign_up(browser_like)
    r = await browser_like.get(f"/videos/{members_only.id}")
    assert r.status_code == 200
    assert "<video" not in r.text and 'role="alert"' in r.text
    previewable = await make_video(site_app)
    r = await browser_like.get(f"/videos/{previewable.id}")
    assert re.search(r'<video[^>]+src="/_fixture/clip.mp4\?media=[^"]+&amp;preview=4"', r.text)


async def test_unknown_pages_and_ids_are_site_404s_but_the_api_keeps_json(
    browser_like: httpx.AsyncClient,
) -> None:
    for path in ("/no/such/page", "/videos/0", "/videos/abc", "/videos/99999999999"):
        r = await browser_like.get(path)
        assert r.status_code == 404, path
        assert "页面不存在" in r.text or "视频不存在" in r.text
        assert 'href="/site-static/site.css"' in r.text
    api = await browser_like.get("/api/no-such-thing")
    assert api.status_code == 404 and api.json()["success"] is False


async def test_a_crash_is_a_500_page_in_the_site_style(
    site_app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(site_app.state.services.catalog, "categories", broken)
    transport = httpx.ASGITransport(app=site_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        r = await client.get("/", headers={"accept": "text/html"})
    assert r.status_code == 500
    assert "服务器出错了" in r.text and "boom" not in r.text


async def test_console_is_for_admins_only(
    browser_like: httpx.AsyncClient, site_app: Starlette
) -> None:
    r = await browser_like.get("/console/videos")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    await sign_up(browser_like)
    for path in ("/console/videos", "/console/users", "/console/orders"):
        r = await browser_like.get(path)
        assert r.status_code == 403 and "需要管理员权限" in r.text
    token = await csrf_of(browser_like, "/")
    video = await make_video(site_app, publish=False)
    r = await browser_like.post(f"/console/videos/{video.id}/publish", data={"csrf_token": token})
    assert r.status_code == 403
    assert (await site_app.state.services.catalog.video(video.id)).status == "draft"


async def test_operator_publishes_disables_and_refunds(
    browser_like: httpx.AsyncClient,
    site_app: Starlette,
    site_admin: SiteAccount,
    site_stubs: tuple[SandboxAlipay, SandboxWechat],
) -> None:
    # A subscriber buys a plan with WeChat Pay.
    plan = await make_plan(site_app, duration_days=30)
    async with client_for(site_app) as buyer:
        await sign_up(buyer)
        token = await csrf_of(buyer, "/plans")
        r = await buyer.post(
            "/checkout", data={"csrf_token": token, "plan_id": str(plan.id), "provider": "wechat"}
        )
        order_id = int(r.headers["location"].rsplit("/", 1)[1])
        assert (await pay_with_wechat(site_app, site_stubs[1], order_id)).is_success
        assert (await buyer.get(f"/orders/{order_id}/status")).json() == {"status": "paid"}
        sub = await buyer.get("/me/subscription")
        assert "会员有效" in sub.text
    order = await Order.find_by_id(order_id)
    assert order is not None

    await log_in(browser_like, site_admin.account)
    token = await csrf_of(browser_like, "/console/videos")
    draft = await make_video(site_app, publish=False)
    r = await browser_like.post(f"/console/videos/{draft.id}/publish", data={"csrf_token": token})
    assert r.status_code == 303
    assert f"/videos/{draft.id}" in (await browser_like.get("/", params={"q": draft.title})).text
    again = await browser_like.post(
        f"/console/videos/{draft.id}/publish", data={"csrf_token": token}
    )
    assert again.status_code == 409 and "视频已发布" in again.text

    r = await browser_like.post(
        f"/console/orders/{order_id}/refund",
        data={"csrf_token": token, "amount_yuan": "1.2.3", "reason": ""},
    )
    assert r.status_code == 422 and "金额格式" in r.text
    r = await browser_like.post(
        f"/console/orders/{order_id}/refund", data={"csrf_token": token, "reason": "<i>测试</i>"}
    )
    assert r.status_code == 303, r.text
    refunded = await Order.find_by_id(order_id)
    assert refunded is not None and refunded.status == "refunded"
    view = await site_app.state.services.commerce.subscriptions.status(order.user_id)
    assert not view.active

    disable = f"/console/users/{order.user_id}/disable"
    r = await browser_like.post(disable, data={"csrf_token": token})
    assert r.status_code == 303
    buyer_user = await User.find_by_id(order.user_id)
    assert buyer_user is not None and buyer_user.status == "disabled"
    me = await browser_like.post(
        f"/console/users/{site_admin.id}/disable", data={"csrf_token": token}
    )
    assert me.status_code == 400 and "不能禁用自己的账号" in me.text


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil"])
async def test_login_never_redirects_off_site(
    browser_like: httpx.AsyncClient, site_admin: SiteAccount, target: str
) -> None:
    token = await csrf_of(browser_like)
    r = await browser_like.post(
        "/login",
        data={
            "csrf_token": token,
            "account": site_admin.account,
            "password": PASSWORD,
            "next": target,
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/"


async def test_console_categories_and_plans(
    browser_like: httpx.AsyncClient, site_app: Starlette, site_admin: SiteAccount
) -> None:
    await log_in(browser_like, site_admin.account)
    token = await csrf_of(browser_like, "/console/categories")
    tag = uuid.uuid4().hex[:6]

    bad = await browser_like.post(
        "/console/categories",
        data={"csrf_token": token, "name": "坏标识", "slug": "Not A Slug", "sort_order": "x"},
    )
    assert bad.status_code == 422 and 'value="坏标识"' in bad.text
    r = await browser_like.post(
        "/console/categories", data={"csrf_token": token, "name": f"纪录片 {tag}", "slug": tag}
    )
    assert r.status_code == 303
    categories = await site_app.state.services.catalog.categories()
    category = next(c for c in categories if c.slug == tag)
    await make_video(site_app, category_id=category.id)
    in_use = await browser_like.post(
        f"/console/categories/{category.id}/delete", data={"csrf_token": token}
    )
    assert in_use.status_code == 409 and "CATEGORY_IN_USE" in in_use.text

    for price in ("", "abc", "1.234", "0"):
        bad = await browser_like.post(
            "/console/plans",
            data={"csrf_token": token, "name": f"年度 {tag}", "price_yuan": price},
        )
        assert bad.status_code == 422, price
    assert f"年度 {tag}" not in (await browser_like.get("/plans")).text
    r = await browser_like.post(
        "/console/plans",
        data={
            "csrf_token": token,
            "name": f"年度 {tag}",
            "price_yuan": "199.9",
            "duration_days": "365",
            "active": "on",
        },
    )
    assert r.status_code == 303, r.text
    shop = await browser_like.get("/plans")
    assert f"年度 {tag}" in shop.text and "¥199.90" in shop.text
    plan = next(
        p for p in await site_app.state.services.commerce.plans.public() if p.name == f"年度 {tag}"
    )
    assert plan.price_fen == 19990
    r = await browser_like.post(f"/console/plans/{plan.id}/toggle", data={"csrf_token": token})
    assert r.status_code == 303
    assert f"年度 {tag}" not in (await browser_like.get("/plans")).text


async def test_my_api_keys_and_usage_chart(
    browser_like: httpx.AsyncClient, site_app: Starlette
) -> None:
    account = unique_email()
    await sign_up(browser_like, account=account)
    user = await User.find_first("select * from users where email = ?", account)
    assert user is not None
    token = await csrf_of(browser_like, "/me/keys")
    assert "近 30 天没有调用" in (await browser_like.get("/me/keys")).text

    too_long = await browser_like.post("/me/keys", data={"csrf_token": token, "name": "名" * 65})
    assert too_long.status_code == 422 and 'role="alert"' in too_long.text
    made = await browser_like.post("/me/keys", data={"csrf_token": token, "name": "<b>脚本</b>"})
    assert made.status_code == 200
    key = re.search(r'<code id="new-key" class="key">([^<]+)</code>', made.text)
    assert key and "&lt;b&gt;脚本&lt;/b&gt;" in made.text
    listing = await browser_like.get("/me/keys")
    assert key.group(1) not in listing.text  # shown once, never again
    token_id = int(re.findall(r'id="token-(\d+)"', listing.text)[0])

    # Two calls yesterday and three today over two abilities, as the router logs them.
    for days_ago, calls in ((1, 2), (0, 3)):
        for n in range(calls):
            await Db.execute(
                "insert into router_logs (request_id, user_id, token_id, path, ability,"
                " status_code, created_at) values (?, ?, ?, '/open/x', ?, 200,"
                " now() - make_interval(days => ?))",
                uuid.uuid4().hex,
                user.id,
                token_id,
                ("video.read", "video.play")[n % 2],
                days_ago,
            )
    chart = await browser_like.get("/me/keys")
    assert "共 5 次" in chart.text
    assert chart.text.count("<rect ") == 2

    r = await browser_like.post(f"/me/keys/{token_id}/disable", data={"csrf_token": token})
    assert r.status_code == 303
    assert "停用" in (await browser_like.get("/me/keys")).text
    async with client_for(site_app) as stranger:
        stranger.headers["accept"] = "text/html"
        await sign_up(stranger)
        theirs = await csrf_of(stranger, "/me/keys")
        r = await stranger.post(f"/me/keys/{token_id}/delete", data={"csrf_token": theirs})
        assert r.status_code == 404 and "令牌不存在" in r.text
    r = await browser_like.post(f"/me/keys/{token_id}/delete", data={"csrf_token": token})
    assert r.status_code == 303
    assert f'id="token-{token_id}"' not in (await browser_like.get("/me/keys")).text


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "t" * 201}, "title"),
        ({"duration_seconds": "-5"}, "duration_seconds"),
        ({"preview_seconds": "99999"}, "preview_seconds"),
        ({"category_id": "99999999"}, "category_id"),
        ({"provider": "youku"}, "provider"),
    ],
)
async def test_console_video_form_refuses_bad_input(
    browser_like: httpx.AsyncClient,
    site_admin: SiteAccount,
    fields: dict[str, str],
    field: str,
) -> None:
    await log_in(browser_like, site_admin.account)
    token = await csrf_of(browser_like, "/console/videos")
    before = await Video.query().count()
    data = {"title": "新视频", "provider": "tencent", "media_id": "m-1", **fields}
    r = await browser_like.post("/console/videos", data={"csrf_token": token, **data})
    assert r.status_code == 422, r.text
    assert f"({field})" in r.text and '<details class="card" open>' in r.text
    assert await Video.query().count() == before


async def test_console_creates_a_draft_with_a_script_title(
    browser_like: httpx.AsyncClient, site_admin: SiteAccount
) -> None:
    await log_in(browser_like, site_admin.account)
    token = await csrf_of(browser_like, "/console/videos")
    title = f"<script>x()</script> {uuid.uuid4().hex[:6]}"
    r = await browser_like.post(
        "/console/videos",
        data={"csrf_token": token, "title": title, "provider": "aliyun", "preview_seconds": "5"},
    )
    assert r.status_code == 303
    video = await Video.query().where("title = ?", title).first()
    assert video is not None and video.status == "draft" and video.provider == "aliyun"
    assert video.preview_seconds == 5 and video.media_id is None
    assert r.headers["location"].startswith(f"/console/videos/{video.id}/upload?msg=")
    listing = await browser_like.get("/console/videos", params={"q": title[-6:]})
    assert "&lt;script&gt;x()&lt;/script&gt;" in listing.text and "<script>x()" not in listing.text


async def test_console_upload_endpoints_answer_json_and_check_csrf(
    browser_like: httpx.AsyncClient, site_app: Starlette, site_admin: SiteAccount
) -> None:
    """The upload page's script gets JSON: the video's status, and for credentials the
    admin API's error codes; a request without the CSRF token is refused."""
    draft = await make_video(site_app, publish=False, media_id=None)
    published = await make_video(site_app)
    await log_in(browser_like, site_admin.account)
    page = await browser_like.get(f"/console/videos/{draft.id}/upload")
    assert page.status_code == 200 and 'id="upload-file"' in page.text
    status = await browser_like.get(f"/console/videos/{draft.id}/status")
    assert status.json() == {"status": "draft", "media_status": "none"}
    token = await csrf_of(browser_like, f"/console/videos/{draft.id}/upload")
    ask = "/console/videos/{}/credentials"
    r = await browser_like.post(ask.format(draft.id), data={"file_name": "a.mp4"})
    assert r.status_code == 403
    r = await browser_like.post(ask.format(draft.id), data={"csrf_token": token, "file_name": ""})
    assert r.status_code == 422 and r.json()["code"] == "VALIDATION_ERROR"
    r = await browser_like.post(
        ask.format(published.id), data={"csrf_token": token, "file_name": "a.mp4"}
    )
    assert r.status_code == 409 and r.json()["code"] == "INVALID_STATE", r.text
    unchanged = await site_app.state.services.catalog.video(published.id)
    assert unchanged.media_status == published.media_status


async def test_console_revenue_and_reconcile(
    browser_like: httpx.AsyncClient,
    site_app: Starlette,
    site_admin: SiteAccount,
    site_stubs: tuple[SandboxAlipay, SandboxWechat],
) -> None:
    await log_in(browser_like, site_admin.account)
    before = await browser_like.get("/console/revenue")
    assert before.status_code == 200
    plan = await make_plan(site_app, price_fen=12345)
    buyer = await site_app.state.services.accounts.register(
        email=unique_email(), phone=None, password=PASSWORD
    )
    checkout = await site_app.state.services.commerce.orders.create(
        buyer.id, plan.id, "wechat", "native"
    )
    assert (await pay_with_wechat(site_app, site_stubs[1], checkout.order.id)).is_success
    after = await browser_like.get("/console/revenue")
    total = re.compile(r"净收入 ¥([0-9]+)\.([0-9]{2})</h2>")
    old, new = total.search(before.text), total.search(after.text)
    assert old and new
    grown = (int(new[1]) * 100 + int(new[2])) - (int(old[1]) * 100 + int(old[2]))
    assert grown == 12345
    assert "<rect " in after.text

    token = await csrf_of(browser_like, "/console/revenue")
    r = await browser_like.post("/console/reconcile", data={"csrf_token": token})
    assert r.status_code == 200 and 'id="reconcile-report"' in r.text


async def test_console_user_detail(
    browser_like: httpx.AsyncClient,
    site_app: Starlette,
    site_admin: SiteAccount,
    site_stubs: tuple[SandboxAlipay, SandboxWechat],
) -> None:
    plan = await make_plan(site_app, price_fen=990)
    buyer = await site_app.state.services.accounts.register(
        email=unique_email(), phone=None, password=PASSWORD, nickname="<img src=x>"
    )
    checkout = await site_app.state.services.commerce.orders.create(
        buyer.id, plan.id, "wechat", "native"
    )
    assert (await pay_with_wechat(site_app, site_stubs[1], checkout.order.id)).is_success
    await log_in(browser_like, site_admin.account)
    r = await browser_like.get(f"/console/users/{buyer.id}")
    assert r.status_code == 200
    assert checkout.order.order_no in r.text and "有效, 等级 1" in r.text
    assert "&lt;img src=x&gt;" in r.text and "<img src=x>" not in r.text
    for missing in ("/console/users/99999999", "/console/users/abc"):
        gone = await browser_like.get(missing)
        assert gone.status_code == 404


async def test_feature_flags_close_their_pages(
    browser_like: httpx.AsyncClient, site_app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = await make_plan(site_app)
    await sign_up(browser_like)
    token = await csrf_of(browser_like, "/plans")
    config = site_app.state.config
    off = FeaturesConfig(registration=False, open_api=False, payments=False)
    closed = config.model_copy(update={"features": off})
    # Starlette's State is not monkeypatch-safe (undo deletes the key): set and restore.
    site_app.state.config = closed
    try:
        monkeypatch.setattr(
            site_app.state.services.commerce, "config", closed
        )  # as the API reads it
        await _all_closed(browser_like, site_app, plan.id, token)
    finally:
        site_app.state.config = config


async def _all_closed(
    browser_like: httpx.AsyncClient, site_app: Starlette, plan_id: int, token: str
) -> None:
    users, orders = await User.query().count(), await Order.query().count()
    async with client_for(site_app) as visitor:
        visitor_token = await csrf_of(visitor, "/signup")
        r = await visitor.post(
            "/signup",
            data={"csrf_token": visitor_token, "account": unique_email(), "password": PASSWORD},
        )
    assert r.status_code == 403 and "暂不开放注册" in r.text
    r = await browser_like.post(
        "/checkout", data={"csrf_token": token, "plan_id": str(plan_id), "provider": "wechat"}
    )
    assert r.status_code == 403 and "PAYMENTS_DISABLED" in r.text
    for page_path in ("/me/keys",):
        r = await browser_like.get(page_path)
        assert r.status_code == 403 and "开放接口未开启" in r.text
    assert (await User.query().count(), await Order.query().count()) == (users, orders)


async def test_wrong_method_is_a_page_for_browsers(browser_like: httpx.AsyncClient) -> None:
    r = await browser_like.get("/logout")
    assert r.status_code == 405
    assert "<title>" in r.text and "METHOD_NOT_ALLOWED" in r.text
    api = await browser_like.get("/api/auth/login")
    assert api.status_code == 405 and api.json()["success"] is False


async def test_a_form_sent_logged_out_returns_to_its_page_after_log_in(
    browser_like: httpx.AsyncClient, site_app: Starlette
) -> None:
    token = await csrf_of(browser_like, "/login")
    r = await browser_like.post(
        "/checkout",
        data={"csrf_token": token, "plan_id": "1", "provider": "wechat"},
        headers={"referer": "http://testserver/plans"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fplans"
    elsewhere = await browser_like.post(
        "/checkout", data={"csrf_token": token}, headers={"referer": "https://evil.example/x"}
    )
    assert elsewhere.headers["location"] == "/login?next=%2F"

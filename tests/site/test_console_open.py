"""The console's open API pages (channels, prices, groups, tokens, usage) and the
bill reconciliation report, over HTTP: each change through the admin API's handler,
each bad input a 4xx page in Chinese with nothing written."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette

from app.open_api import routing_config
from app.open_api.models import AbilityPrice, AbilityRoute, ApiToken, Channel, UserGroup
from app.sandbox.cashier import SandboxAlipay, SandboxWechat
from luser_db import Db

from .conftest import (
    PASSWORD,
    SiteAccount,
    csrf_of,
    log_in,
    make_plan,
    pay_with_wechat,
    sign_up,
    unique_email,
)

NEW_PAGES = (
    "/console/open/channels",
    "/console/open/prices",
    "/console/open/tokens",
    "/console/open/usage",
    "/console/bills",
)


async def test_new_console_pages_are_for_admins_only(browser_like: httpx.AsyncClient) -> None:
    await sign_up(browser_like)
    for path in NEW_PAGES:
        r = await browser_like.get(path)
        assert r.status_code == 403 and "需要管理员权限" in r.text, path
    token = await csrf_of(browser_like, "/")
    before = await Channel.query().count()
    r = await browser_like.post(
        "/console/open/channels",
        data={"csrf_token": token, "name": "x", "provider": "tencent"},
    )
    assert r.status_code == 403 and await Channel.query().count() == before


async def test_channels_create_disable_delete(
    browser_like: httpx.AsyncClient, site_admin: SiteAccount
) -> None:
    await log_in(browser_like, site_admin.account)
    token = await csrf_of(browser_like, "/console/open/channels")
    name = f"<script>x()</script>{uuid.uuid4().hex[:6]}"
    r = await browser_like.post(
        "/console/open/channels",
        data={"csrf_token": token, "name": name, "provider": "aliyun", "priority": "-3"},
    )
    assert r.status_code == 303, r.text
    channel = await Channel.query().where("name = ?", name).first()
    assert channel is not None and channel.provider == "aliyun" and channel.priority == -3
    listing = await browser_like.get("/console/open/channels")
    assert "&lt;script&gt;x()&lt;/script&gt;" in listing.text and "<script>x()" not in listing.text

    again = await browser_like.post(
        "/console/open/channels", data={"csrf_token": token, "name": name, "provider": "tencent"}
    )
    assert again.status_code == 409 and "通道名称已存在" in again.text

    r = await browser_like.post(
        f"/console/open/channels/{channel.id}/disable", data={"csrf_token": token}
    )
    assert r.status_code == 303
    assert (await Channel.find_by_id(channel.id)).status == "disabled"  # type: ignore[union-attr]
    r = await browser_like.post(
        f"/console/open/channels/{channel.id}/delete", data={"csrf_token": token}
    )
    assert r.status_code == 303 and await Channel.find_by_id(channel.id) is None
    gone = await browser_like.post(
        f"/console/open/channels/{channel.id}/delete", data={"csrf_token": token}
    )
    assert gone.status_code == 404 and "通道不存在" in gone.text


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "n" * 65}, "name"),
        ({"provider": "youku"}, "provider"),
        ({"priority": "abc"}, "priority"),
        ({"priority": "9" * 30}, "priority"),
        ({"weight": "-1"}, "weight"),
        ({"base_url": "ftp://example.com"}, "base_url"),
    ],
)
async def test_channel_form_refuses_bad_input(
    browser_like: httpx.AsyncClient, site_admin: SiteAccount, fields: dict[str, str], field: str
) -> None:
    await log_in(browser_like, site_admin.account)
    token = await csrf_of(browser_like, "/console/open/channels")
    before = await Channel.query().count()
    data = {"name": f"c-{uuid.uuid4().hex[:6]}", "provider": "tencent", **fields}
    r = await browser_like.post("/console/open/channels", data={"csrf_token": token, **data})
    assert r.status_code == 422, r.text
    assert 'role="alert"' in r.text and f"({field})" in r.text
    assert await Channel.query().count() == before


async def test_prices_and_groups(browser_like: httpx.AsyncClient, site_admin: SiteAccount) -> None:
    await log_in(browser_like, site_admin.account)
    token = await csrf_of(browser_like, "/console/open/prices")
    ability = f"video.t{uuid.uuid4().hex[:6]}"
    r = await browser_like.post(
        "/console/open/prices",
        data={"csrf_token": token, "ability": ability, "price": "2000000", "description": "试"},
    )
    assert r.status_code == 303, r.text
    row = await AbilityPrice.query().where("ability = ?", ability).first()
    assert row is not None and row.price == 2_000_000
    assert f'id="price-{ability}"' in (await browser_like.get("/console/open/prices")).text

    group = f"vip{uuid.uuid4().hex[:6]}"
    r = await browser_like.post(
        "/console/open/groups",
        data={"csrf_token": token, "group_name": group, "ratio": "0.8"},
    )
    assert r.status_code == 303, r.text
    saved = await UserGroup.query().where("name = ?", group).first()
    assert saved is not None and str(saved.ratio).startswith("0.8")

    prices, groups = await AbilityPrice.query().count(), await UserGroup.query().count()
    for path, data in (
        ("/console/open/prices", {"ability": ability, "price": "abc"}),
        ("/console/open/prices", {"ability": ability, "price": "-5"}),
        ("/console/open/prices", {"ability": "bad ability!", "price": "1"}),
        ("/console/open/prices", {"ability": "<script>", "price": "1"}),
        ("/console/open/groups", {"group_name": "Bad Name", "ratio": "1"}),
        ("/console/open/groups", {"group_name": "g1", "ratio": "0"}),
        ("/console/open/groups", {"group_name": "g1", "ratio": "abc"}),
        ("/console/open/groups", {"group_name": "g1", "ratio": "9999999"}),
    ):
        r = await browser_like.post(path, data={"csrf_token": token, **data})
        assert r.status_code == 422, (data, r.text)
        assert 'role="alert"' in r.text and "<script>" not in r.text.split("<main", 1)[-1]
    assert await AbilityPrice.query().count() == prices
    assert await UserGroup.query().count() == groups
    assert (await AbilityPrice.query().where("ability = ?", ability).first()).price == 2_000_000  # type: ignore[union-attr]


async def test_ability_routes_saved_and_deleted(
    browser_like: httpx.AsyncClient, site_app: Starlette, site_admin: SiteAccount
) -> None:
    open_api = site_app.state.services.open_api
    tag = uuid.uuid4().hex[:6]
    channel = await routing_config.save_channel(
        {"name": f"r{tag}", "provider": "tencent"}, open_api.box
    )
    ability = f"video.r{tag}"
    await routing_config.set_price(ability, 1000)
    await log_in(browser_like, site_admin.account)
    token = await csrf_of(browser_like, "/console/open/prices")
    r = await browser_like.post(
        "/console/open/routes",
        data={
            "csrf_token": token,
            "route_ability": ability,
            "route_channel": str(channel["id"]),
            "route_priority": "5",
        },
    )
    assert r.status_code == 303, r.text
    route = await AbilityRoute.query().where("ability = ?", ability).first()
    assert route is not None and route.group_name == "default" and route.priority == 5
    assert f'id="route-{route.id}"' in (await browser_like.get("/console/open/prices")).text

    before = await AbilityRoute.query().count()
    ours = {"route_ability": ability, "route_channel": str(channel["id"])}
    for data, status in (
        ({"route_ability": ability, "route_channel": "abc"}, 422),
        ({"route_ability": "no such!", "route_channel": str(channel["id"])}, 422),
        ({"route_ability": f"video.none{tag}", "route_channel": str(channel["id"])}, 404),
        ({"route_ability": ability, "route_channel": "999999999"}, 404),
        ({**ours, "route_group": "nogroup"}, 404),
        ({**ours, "route_priority": "x"}, 422),
    ):
        r = await browser_like.post("/console/open/routes", data={"csrf_token": token, **data})
        assert r.status_code == status, (data, r.text)
        assert 'role="alert"' in r.text
    assert await AbilityRoute.query().count() == before

    r = await browser_like.post(
        f"/console/open/routes/{route.id}/delete", data={"csrf_token": token}
    )
    assert r.status_code == 303 and await AbilityRoute.find_by_id(route.id) is None
    gone = await browser_like.post(
        f"/console/open/routes/{route.id}/delete", data={"csrf_token": token}
    )
    assert gone.status_code == 404 and "能力路由不存在" in gone.text


async def test_tokens_created_for_a_user_and_disabled(
    browser_like: httpx.AsyncClient, site_app: Starlette, site_admin: SiteAccount
) -> None:
    owner = await site_app.state.services.accounts.register(
        email=unique_email(), phone=None, password=PASSWORD
    )
    await log_in(browser_like, site_admin.account)
    token = await csrf_of(browser_like, "/console/open/tokens")
    made = await browser_like.post(
        "/console/open/tokens",
        data={"csrf_token": token, "user_id": str(owner.id), "name": "<i>脚本</i>"},
    )
    assert made.status_code == 200, made.text
    key = re.search(r'<code id="new-key" class="key">([^<]+)</code>', made.text)
    assert key and "&lt;i&gt;脚本&lt;/i&gt;" in made.text
    row = await ApiToken.query().where("user_id = ?", owner.id).first()
    assert row is not None and row.status == "enabled"
    listing = await browser_like.get("/console/open/tokens", params={"user_id": str(owner.id)})
    assert f'id="token-{row.id}"' in listing.text and key.group(1) not in listing.text

    r = await browser_like.post(
        f"/console/open/tokens/{row.id}/disable", data={"csrf_token": token}
    )
    assert r.status_code == 303
    assert (await ApiToken.find_by_id(row.id)).status == "disabled"  # type: ignore[union-attr]

    before = await ApiToken.query().count()
    for data, status in (
        ({"user_id": "abc"}, 422),
        ({"user_id": ""}, 422),
        ({"user_id": "0"}, 422),
        ({"user_id": "999999999999"}, 404),
        ({"user_id": str(owner.id), "name": "n" * 65}, 422),
    ):
        r = await browser_like.post("/console/open/tokens", data={"csrf_token": token, **data})
        assert r.status_code == status, (data, r.text)
        assert 'role="alert"' in r.text
    assert await ApiToken.query().count() == before
    missing = await browser_like.post(
        "/console/open/tokens/999999999999/disable", data={"csrf_token": token}
    )
    assert missing.status_code == 404 and "令牌不存在" in missing.text


async def test_usage_chart_counts_calls_and_cost(
    browser_like: httpx.AsyncClient, site_app: Starlette, site_admin: SiteAccount
) -> None:
    await log_in(browser_like, site_admin.account)
    total = re.compile(r'id="calls-total">(\d+)<.*?id="cost-total">([0-9.]+)<', re.S)
    before = total.search((await browser_like.get("/console/open/usage")).text)
    assert before
    user = await site_app.state.services.accounts.register(
        email=unique_email(), phone=None, password=PASSWORD
    )
    for days_ago, cost in ((1, 150_000_000), (0, 50_000_000), (0, 20_000_000)):
        await Db.execute(
            "insert into router_logs (request_id, user_id, path, ability, status_code, cost,"
            " created_at) values (?, ?, '/open/x', 'video.read', 200, ?,"
            " now() - make_interval(days => ?))",
            uuid.uuid4().hex,
            user.id,
            cost,
            days_ago,
        )
    after = total.search((await browser_like.get("/console/open/usage")).text)
    assert after
    assert int(after[1]) - int(before[1]) == 3
    fen = round(float(after[2]) * 100) - round(float(before[2]) * 100)
    assert fen == 22  # 0.22 yuan = 220_000_000 nano-units


async def test_bill_reconciliation_report(
    browser_like: httpx.AsyncClient,
    site_app: Starlette,
    site_admin: SiteAccount,
    site_stubs: tuple[SandboxAlipay, SandboxWechat],
) -> None:
    plan = await make_plan(site_app, price_fen=777)
    buyer = await site_app.state.services.accounts.register(
        email=unique_email(), phone=None, password=PASSWORD
    )
    checkout = await site_app.state.services.commerce.orders.create(
        buyer.id, plan.id, "wechat", "native"
    )
    wx = site_stubs[1]
    assert (await pay_with_wechat(site_app, wx, checkout.order.id)).is_success
    attempts = await site_app.state.services.commerce.orders.attempts(checkout.order.id)
    ours = attempts[-1].out_trade_no
    today = (datetime.now(UTC) + timedelta(hours=8)).date().isoformat()
    # WeChat's bill says 7.00 for our 7.77 payment, and lists a payment we never took.
    stranger = f"PNOTOURS{uuid.uuid4().hex[:10]}"
    wx.publish_bill(today, [("trade", ours, "7.00", None), ("trade", stranger, "1.00", None)])

    await log_in(browser_like, site_admin.account)
    token = await csrf_of(browser_like, "/console/bills")
    r = await browser_like.post(
        "/console/bills", data={"csrf_token": token, "provider": "wechat", "date": today}
    )
    assert r.status_code == 303, r.text
    bill_path = r.headers["location"]
    bill_id = int(bill_path.rsplit("/", 1)[1])
    stored = await Db.query("payment_bills").where("id = ?", bill_id).first()
    assert stored is not None
    detail = await browser_like.get(bill_path)
    assert detail.status_code == 200
    summary = (
        f"账单缺少 {stored['missing']} 笔, 账单多出 {stored['extra']} 笔,"
        f" 金额不符 {stored['mismatched']} 笔"
    )
    assert summary in detail.text
    assert stored["extra"] >= 1 and stored["mismatched"] >= 1
    rows = re.findall(r"<tr><td>([^<]+)</td><td>[^<]+</td><td>([^<]+)</td>", detail.text)
    assert ("金额不符", ours) in rows and ("账单多出", stranger) in rows
    assert "¥7.77" in detail.text and "¥7.00" in detail.text
    assert f'id="bill-{bill_id}"' in (await browser_like.get("/console/bills")).text

    before = await Db.query("payment_bills").count()
    for data in (
        {"provider": "paypal", "date": today},
        {"provider": "wechat", "date": "not-a-date"},
        {"provider": "wechat", "date": ""},
        {"provider": "<script>", "date": today},
    ):
        r = await browser_like.post("/console/bills", data={"csrf_token": token, **data})
        assert r.status_code == 422, (data, r.text)
        assert 'role="alert"' in r.text
    assert await Db.query("payment_bills").count() == before
    for path in ("/console/bills/999999999", "/console/bills/abc"):
        r = await browser_like.get(path)
        assert r.status_code == 404, path


@pytest.mark.parametrize(
    "path",
    [
        "/console/open/channels",
        "/console/open/prices",
        "/console/open/groups",
        "/console/open/routes",
        "/console/open/tokens",
        "/console/bills",
        "/console/open/tokens/1/disable",
        "/console/open/channels/1/delete",
    ],
)
async def test_new_forms_refuse_a_forged_csrf_token(
    browser_like: httpx.AsyncClient, site_admin: SiteAccount, path: str
) -> None:
    await log_in(browser_like, site_admin.account)
    r = await browser_like.post(path, data={"csrf_token": "forged.token", "name": "x"})
    assert r.status_code == 403 and "CSRF" in r.text

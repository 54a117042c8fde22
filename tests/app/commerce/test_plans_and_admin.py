"""Plans (admin CRUD, public list) and the admin reports: orders by status, revenue per
day, active subscribers, all paginated."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from app.payments.clock import BEIJING
from app.sandbox.payments import WechatPayStub
from luser_common import utc_now

from .conftest import Buyer, MakeBuyer, MakePlan, Order, post_wechat


async def test_plan_crud_and_public_list(
    shop: httpx.AsyncClient, shop_admin: Buyer, buyer: Buyer, make_plan: MakePlan
) -> None:
    plan = await make_plan(level=4, days=90, price_fen=9900, description="季卡")
    pid = plan["id"]
    r = await shop.get("/api/plans")
    assert r.status_code == 200 and pid in [p["id"] for p in r.json()["data"]]

    r = await shop.patch(
        f"/api/admin/plans/{pid}",
        headers=shop_admin.headers,
        json={"active": False, "price_fen": 8800},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["data"]["active"], r.json()["data"]["price_fen"]) == (False, 8800)
    r = await shop.get("/api/plans")
    assert pid not in [p["id"] for p in r.json()["data"]]
    r = await shop.get("/api/admin/plans?active=false&size=100", headers=shop_admin.headers)
    assert pid in [p["id"] for p in r.json()["data"]["items"]]
    r = await shop.get(f"/api/admin/plans/{pid}", headers=shop_admin.headers)
    assert r.json()["data"]["description"] == "季卡"

    r = await shop.delete(f"/api/admin/plans/{pid}", headers=shop_admin.headers)
    assert r.status_code == 200 and r.json()["data"] == {"deleted": True}
    r = await shop.get(f"/api/admin/plans/{pid}", headers=shop_admin.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "PLAN_NOT_FOUND"

    r = await shop.post(
        "/api/admin/plans",
        headers=buyer.headers,
        json={"name": "x", "level": 1, "duration_days": 1, "price_fen": 1},
    )
    assert r.status_code == 403


async def test_an_ordered_plan_cannot_be_deleted(
    shop: httpx.AsyncClient,
    shop_admin: Buyer,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    await order_for(buyer, plan)
    r = await shop.delete(f"/api/admin/plans/{plan['id']}", headers=shop_admin.headers)
    assert r.status_code == 409


@pytest.mark.parametrize(
    "change",
    [
        {"price_fen": 30.5},
        {"price_fen": 3000.0},
        {"price_fen": "3000"},
        {"price_fen": 0},
        {"price_fen": -1},
        {"price_fen": 10**13},
        {"level": 0},
        {"duration_days": 0},
        {"name": ""},
        {"bonus": 1},
    ],
)
async def test_bad_plans_are_refused(
    change: dict[str, Any], shop: httpx.AsyncClient, shop_admin: Buyer
) -> None:
    body = {"name": "月卡", "level": 1, "duration_days": 30, "price_fen": 3000, **change}
    r = await shop.post("/api/admin/plans", headers=shop_admin.headers, json=body)
    assert r.status_code in (400, 422), r.text


async def test_admin_orders_by_status_and_reports(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_admin: Buyer,
    make_buyer: MakeBuyer,
    make_plan: MakePlan,
    order_for: Order,
) -> None:
    plan = await make_plan(level=5, days=30, price_fen=1234)
    payer = await make_buyer()
    paid = await order_for(payer, plan)
    no = paid["payment"]["out_trade_no"]
    shop_wechat.mark_paid(no)
    assert (await post_wechat(shop, *shop_wechat.notification(no))).status_code == 204
    pending = await order_for(payer, plan)

    admin = shop_admin.headers
    r = await shop.get(f"/api/admin/orders?status=paid&user_id={payer.id}", headers=admin)
    page = r.json()["data"]
    assert [o["id"] for o in page["items"]] == [paid["order"]["id"]]
    r = await shop.get(f"/api/admin/orders?status=pending&user_id={payer.id}", headers=admin)
    assert [o["id"] for o in r.json()["data"]["items"]] == [pending["order"]["id"]]
    r = await shop.get("/api/admin/orders?size=1&page=1", headers=admin)
    page = r.json()["data"]
    assert len(page["items"]) == 1 and page["total_row"] >= 2 and page["total_page"] >= 2
    r = await shop.get(f"/api/admin/orders/{paid['order']['id']}", headers=admin)
    detail = r.json()["data"]
    assert detail["attempts"][0]["out_trade_no"] == no and detail["refunds"] == []

    today = utc_now().astimezone(BEIJING).date()
    r = await shop.get(f"/api/admin/revenue/daily?from={today}&to={today}", headers=admin)
    days = r.json()["data"]
    assert days["total_row"] == 1
    day = days["items"][0]
    assert day["day"] == today.isoformat() and day["orders"] >= 1
    assert all(isinstance(day[k], int) for k in ("gross_fen", "refunded_fen", "net_fen"))
    assert day["net_fen"] == day["gross_fen"] - day["refunded_fen"]
    yesterday = today - timedelta(days=1)
    r = await shop.get(f"/api/admin/revenue/daily?to={yesterday}", headers=admin)
    assert all(date.fromisoformat(d["day"]) <= yesterday for d in r.json()["data"]["items"])

    r = await shop.get("/api/admin/subscribers?level=5&size=100", headers=admin)
    subs = r.json()["data"]
    mine = [s for s in subs["items"] if s["user_id"] == payer.id]
    assert len(mine) == 1 and mine[0]["level"] == 5 and mine[0]["email"] == payer.email
    assert all(s["level"] >= 5 for s in subs["items"])
    r = await shop.get("/api/admin/subscribers", headers=payer.headers)
    assert r.status_code == 403


async def test_openapi_lists_the_commerce_operations(shop: httpx.AsyncClient) -> None:
    r = await shop.get("/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert {
        "/api/orders",
        "/api/plans",
        "/api/payments/notify/{provider}",
        "/api/admin/revenue/daily",
    } <= set(paths)

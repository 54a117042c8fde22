"""Commerce fixtures: stub Alipay / WeChat Pay gateways on 127.0.0.1, the app with the
commerce routes and lifespan installed, accounts, plans and paid orders.

Names start with ``shop_`` because the sibling conftest (tests/app) defines its own
app without commerce; sharing the session database and the global pool is fine,
both apps live for the whole session.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from app import create_app
from app.commerce import Commerce, SubscriptionEntitlements
from app.files import MIGRATIONS_DIR
from app.sandbox.payments import AlipayStub, KeyPair, WechatPayStub, generate_keypair
from app.sandbox.vod import TencentVodStub
from app.settings import AppConfig, payment_config_model
from luser_db import Db
from luser_db.migrations import Migrator

from ..response_shapes import shape_check

MIGRATIONS = str(MIGRATIONS_DIR)
PASSWORD = "s3cret-Passw0rd"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test here may reach a real provider host, even by mistake."""
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and address[0] not in _LOOPBACK:
            raise AssertionError(f"test tried to reach {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture(scope="session")
def shop_keys() -> dict[str, KeyPair]:
    return {name: generate_keypair() for name in ("app", "alipay", "merchant", "platform", "evil")}


@pytest.fixture(scope="session")
def shop_alipay(no_proxy_env: None, shop_keys: dict[str, KeyPair]) -> Iterator[AlipayStub]:
    with AlipayStub(app_keys=shop_keys["app"], alipay_keys=shop_keys["alipay"]) as stub:
        yield stub


@pytest.fixture(scope="session")
def shop_wechat(no_proxy_env: None, shop_keys: dict[str, KeyPair]) -> Iterator[WechatPayStub]:
    with WechatPayStub(
        merchant_keys=shop_keys["merchant"], platform_keys=shop_keys["platform"]
    ) as stub:
        yield stub


@pytest.fixture(scope="session")
async def shop_db(database_url: str) -> str:
    # Every migration: the app's lifespan also starts the sibling features (open API).
    await Migrator(database_url, directory=MIGRATIONS).up()
    return database_url


@pytest.fixture(scope="session")
def shop_config(
    shop_db: str,
    shop_alipay: AlipayStub,
    shop_wechat: WechatPayStub,
    tencent_stub: TencentVodStub,
) -> AppConfig:
    payment = payment_config_model()(
        order_expire_minutes=30,
        reconcile_after_minutes=5,
        # The background job starts with the app but never fires during the tests;
        # tests run passes themselves, deterministically.
        reconcile_interval_seconds=86400,
        refund_query_interval_seconds=86400,
        alipay=shop_alipay.config(),
        wechat=shop_wechat.config(),
    )
    return AppConfig.model_validate(
        {
            "env": "test",
            "database": {"url": shop_db, "max_connections": 10, "min_connections": 1},
            "jwt": {"secret": "test-jwt-secret-0123456789abcdef", "access_ttl_seconds": 600},
            "payment": payment,
            # Tests deliver notifications themselves (test_user_notifications.py).
            "notifications": {"drain_interval_seconds": 0},
            # Part 1's VOD stub (tests/app/conftest.py), so play can be exercised end to end.
            "vod": {
                "tencent": tencent_stub.config(
                    play_domain="1500000000.vod2.myqcloud.com",
                    play_key="tencent-play-key",
                ).model_dump()
            },
        }
    )


@pytest.fixture(scope="session")
async def shop_app(shop_config: AppConfig) -> AsyncIterator[Starlette]:
    app = create_app(shop_config, entitlements=SubscriptionEntitlements())
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
def commerce(shop_app: Starlette) -> Commerce:
    found: Commerce = shop_app.state.services.commerce
    return found


@pytest.fixture(scope="session")
async def shop(shop_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=shop_app, client=("10.0.0.2", 4321))
    hooks = {"response": [shape_check(shop_app)]}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", event_hooks=hooks
    ) as client:
        yield client


@dataclass
class Buyer:
    id: int
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


MakeBuyer = Callable[..., Awaitable[Buyer]]


@pytest.fixture(scope="session")
def make_buyer(shop: httpx.AsyncClient, shop_app: Starlette) -> MakeBuyer:
    async def make(*, admin: bool = False) -> Buyer:
        email = f"b{uuid.uuid4().hex[:12]}@example.com"
        if admin:
            await shop_app.state.services.accounts.create_admin(email, PASSWORD)
        else:
            r = await shop.post("/api/auth/register", json={"email": email, "password": PASSWORD})
            assert r.status_code == 201, r.text
        r = await shop.post("/api/auth/login", json={"account": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        return Buyer(data["user"]["id"], email, data["access_token"])

    return make


@pytest.fixture(scope="session")
async def shop_admin(make_buyer: MakeBuyer) -> Buyer:
    return await make_buyer(admin=True)


@pytest.fixture
async def buyer(make_buyer: MakeBuyer) -> Buyer:
    return await make_buyer()


MakePlan = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture(scope="session")
def make_plan(shop: httpx.AsyncClient, shop_admin: Buyer) -> MakePlan:
    async def make(
        level: int = 1, days: int = 30, price_fen: int = 3000, **extra: Any
    ) -> dict[str, Any]:
        body = {
            "name": f"VIP{level}-{uuid.uuid4().hex[:6]}",
            "level": level,
            "duration_days": days,
            "price_fen": price_fen,
            **extra,
        }
        r = await shop.post("/api/admin/plans", json=body, headers=shop_admin.headers)
        assert r.status_code == 201, r.text
        plan: dict[str, Any] = r.json()["data"]
        return plan

    return make


@pytest.fixture
async def plan(make_plan: MakePlan) -> dict[str, Any]:
    return await make_plan()


Checkout = dict[str, Any]
Order = Callable[..., Awaitable[Checkout]]


@pytest.fixture
def order_for(shop: httpx.AsyncClient) -> Order:
    """POST /api/orders; returns the checkout (``order`` + ``payment``)."""

    async def make(
        buyer: Buyer,
        plan: dict[str, Any],
        provider: str = "wechat",
        method: str | None = None,
        **extra: Any,
    ) -> Checkout:
        method = method or ("native" if provider == "wechat" else "page")
        body = {"plan_id": plan["id"], "provider": provider, "method": method, **extra}
        r = await shop.post("/api/orders", json=body, headers=buyer.headers)
        assert r.status_code == 201, r.text
        checkout: Checkout = r.json()["data"]
        return checkout

    return make


async def post_alipay(shop: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await shop.post(
        "/api/payments/notify/alipay",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )


async def post_wechat(
    shop: httpx.AsyncClient, headers: dict[str, str], body: bytes
) -> httpx.Response:
    return await shop.post(
        "/api/payments/notify/wechat",
        content=body,
        headers={**headers, "Content-Type": "application/json"},
    )


async def order_row(order_id: int) -> dict[str, Any]:
    rec = await Db.find_first("SELECT * FROM orders WHERE id = ?", order_id)
    assert rec is not None
    return dict(rec)


async def grants_for(user_id: int) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in await Db.find("SELECT * FROM subscriptions WHERE user_id = ? ORDER BY id", user_id)
    ]


async def level_of(user_id: int) -> int:
    return await SubscriptionEntitlements().level_for(user_id)


@pytest.fixture(scope="session")
async def paid_transitions(shop_db: str) -> AsyncIterator[None]:
    """Record every ``orders.status -> 'paid'`` transition in a side table (test only),
    so "exactly one PAID transition" is observed, not inferred. Own connection: the
    global pool may already be closed by another app's teardown when this one runs."""

    # A fresh connection for each step: later suites (luser_db's outage tests) terminate
    # every backend of the database, so a connection held across the session may be gone.
    async def run(sql: str) -> None:
        conn = await asyncpg.connect(shop_db)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await run(
        "CREATE TABLE IF NOT EXISTS test_paid_transitions (order_id bigint,"
        " at timestamptz DEFAULT clock_timestamp());"
        "CREATE OR REPLACE FUNCTION test_log_paid() RETURNS trigger AS $$ BEGIN"
        " IF NEW.status = 'paid' AND OLD.status <> 'paid' THEN"
        " INSERT INTO test_paid_transitions (order_id) VALUES (NEW.id); END IF;"
        " RETURN NEW; END $$ LANGUAGE plpgsql;"
        "CREATE OR REPLACE TRIGGER test_orders_paid AFTER UPDATE ON orders"
        " FOR EACH ROW EXECUTE FUNCTION test_log_paid();"
    )
    yield
    await run(
        "DROP TRIGGER IF EXISTS test_orders_paid ON orders;"
        "DROP FUNCTION IF EXISTS test_log_paid(); DROP TABLE IF EXISTS test_paid_transitions;"
    )


async def paid_transition_count(order_id: int) -> int:
    return (
        await Db.query_int(
            "SELECT count(*) FROM test_paid_transitions WHERE order_id = ?", order_id
        )
        or 0
    )

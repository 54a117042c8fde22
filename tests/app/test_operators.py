"""Operators: admin user search and detail (HTTP), and the ``luser`` admin command groups.

The CLI commands run through click's CliRunner in a worker thread (each runs its
own event loop and pool) against the same test database as the API.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from app.cli import main
from app.commerce.models import Order, Plan
from app.open_api import manage
from app.settings import AppConfig
from luser_db import Db

from .conftest import Account, MakeAccount, detached_pool, error_code

Cli = Callable[..., Awaitable[Result]]


@pytest.fixture
def cli(app_config: AppConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Cli:
    assert app_config.database.url is not None
    monkeypatch.setenv("LUSER__DATABASE__URL", app_config.database.url.get_secret_value())
    monkeypatch.setenv("LUSER_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("LUSER_ENV", "test")
    runner = CliRunner()

    async def invoke(*args: str) -> Result:
        async with detached_pool(app_config):  # the command opens its own pool
            return await asyncio.to_thread(runner.invoke, main, list(args))

    return invoke


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def users_page(api: httpx.AsyncClient, admin: Account, **params: Any) -> dict[str, Any]:
    r = await api.get("/api/admin/users", params=params, headers=admin.headers)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


# -- HTTP ------------------------------------------------------------------------------


async def test_search_by_email_phone_and_status(
    api: httpx.AsyncClient, admin: Account, make_account: MakeAccount
) -> None:
    one = await make_account()
    two = await make_account(phone=True)
    local = one.account.split("@")[0]
    page = await users_page(api, admin, email=local.upper())  # email: case-insensitive
    assert [u["id"] for u in page["items"]] == [one.id]
    assert page["total_row"] == 1 and page["page_number"] == 1 and page["total_page"] == 1
    page = await users_page(api, admin, phone=two.account[-8:])
    assert [u["id"] for u in page["items"]] == [two.id]

    r = await api.post(f"/api/admin/users/{one.id}/disable", headers=admin.headers)
    assert r.status_code == 200
    assert (await users_page(api, admin, email=local, status="disabled"))["total_row"] == 1
    assert (await users_page(api, admin, email=local, status="active"))["total_row"] == 0


async def test_search_by_created_range_paginates(
    api: httpx.AsyncClient, admin: Account, make_account: MakeAccount
) -> None:
    accounts = [await make_account() for _ in range(3)]
    base = datetime(2001, 2, 3, tzinfo=UTC)
    for i, account in enumerate(accounts):
        await Db.execute(
            "update users set created_at = ? where id = ?", base + timedelta(days=i), account.id
        )
    window = {
        "created_from": base.isoformat(),
        "created_to": (base + timedelta(days=2)).isoformat(),
    }
    page = await users_page(api, admin, size=1, **window)
    assert page["total_row"] == 2 and page["total_page"] == 2
    assert [u["id"] for u in page["items"]] == [accounts[1].id]  # newest first
    page = await users_page(api, admin, size=1, page=2, **window)
    assert [u["id"] for u in page["items"]] == [accounts[0].id]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (
            {"created_from": "2020-01-02T00:00:00Z", "created_to": "2020-01-01T00:00:00Z"},
            "created_from",
        ),
        ({"created_from": "2020-01-02T00:00:00"}, "created_from"),
        ({"status": "deleted"}, "status"),
        ({"created_to": "yesterday"}, "created_to"),
    ],
)
async def test_bad_search_is_a_clear_422(
    api: httpx.AsyncClient, admin: Account, params: dict[str, str], field: str
) -> None:
    r = await api.get("/api/admin/users", params=params, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert error_code(r) == "VALIDATION_ERROR"
    assert r.json()["error"]["field"] == field


async def test_user_detail_has_orders_subscription_and_wallet(
    api: httpx.AsyncClient, admin: Account, make_account: MakeAccount
) -> None:
    user = await make_account()
    plan = Plan(name="op-" + uuid.uuid4().hex[:6], level=2, duration_days=30, price_fen=990)
    await plan.save()
    order = Order(
        order_no="OP" + uuid.uuid4().hex[:20],
        user_id=user.id,
        plan_id=plan.id,
        plan_name=plan.name,
        amount_fen=990,
        expires_at=datetime.now(UTC) + timedelta(minutes=30),
    )
    await order.save()
    await manage.top_up(user.id, 5_000, note="test")
    r = await api.get(f"/api/admin/users/{user.id}", headers=admin.headers)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["user"]["id"] == user.id and "password_hash" not in data["user"]
    assert [o["id"] for o in data["orders"]] == [order.id]
    assert data["subscription"] == {
        "active": False,
        "level": 0,
        "current_period_ends_at": None,
        "access_ends_at": None,
        "periods": [],
    }
    assert data["wallet"] == {"user_id": user.id, "balance": 5_000}

    r = await api.get("/api/admin/users/987654321012", headers=admin.headers)
    assert r.status_code == 404 and error_code(r) == "NOT_FOUND"


async def test_user_list_is_for_admins_only(
    api: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    user = await make_account()
    r = await api.get("/api/admin/users", headers=user.headers)
    assert r.status_code == 403


# -- CLI -------------------------------------------------------------------------------


async def test_cli_users_list_show_and_disable(cli: Cli, make_account: MakeAccount) -> None:
    user = await make_account()
    local = user.account.split("@")[0]
    page = as_json(await cli("users", "list", "--email", local, "--json"))
    assert [u["id"] for u in page["items"]] == [user.id] and page["total_row"] == 1
    table = await cli("users", "list", "--email", local)
    assert table.exit_code == 0 and user.account in table.output and "共 1 条" in table.output

    detail = as_json(await cli("users", "show", str(user.id), "--json"))
    assert detail["user"]["email"] == user.account and detail["wallet"]["balance"] == 0
    assert (await cli("users", "show", str(user.id))).exit_code == 0

    assert as_json(await cli("users", "disable", str(user.id), "--json"))["status"] == "disabled"
    assert await Db.query_str("select status from users where id = ?", user.id) == "disabled"


async def test_cli_bad_input_fails_in_chinese_and_writes_nothing(
    cli: Cli, make_account: MakeAccount
) -> None:
    unknown = await cli("users", "show", "987654321012")
    assert unknown.exit_code != 0 and "用户不存在" in unknown.output

    before = await Db.query_int("select count(*) from users where status = 'disabled'")
    gone = await cli("users", "disable", "987654321012")
    assert gone.exit_code != 0 and "用户不存在" in gone.output
    assert await Db.query_int("select count(*) from users where status = 'disabled'") == before

    backwards = await cli(
        "users",
        "list",
        "--created-from",
        "2020-02-01T00:00:00Z",
        "--created-to",
        "2020-01-01T00:00:00Z",
    )
    assert backwards.exit_code != 0 and "时间范围无效" in backwards.output

    name = "bad-" + uuid.uuid4().hex[:8]
    bad = await cli(
        "plans",
        "create",
        "--name",
        name,
        "--level",
        "1",
        "--duration-days",
        "30",
        "--price-fen",
        "0",
    )
    assert bad.exit_code != 0 and "错误" in bad.output
    assert await Db.query_int("select count(*) from plans where name = ?", name) == 0

    top_up = await cli("wallet", "top-up", "987654321012", "100")
    assert top_up.exit_code != 0 and "用户不存在" in top_up.output
    assert (
        await Db.query_int("select count(*) from wallet_ledger where user_id = 987654321012") == 0
    )


async def test_cli_plans_and_videos(cli: Cli) -> None:
    name = "cli-" + uuid.uuid4().hex[:8]
    plan = as_json(
        await cli(
            "plans",
            "create",
            "--name",
            name,
            "--level",
            "3",
            "--duration-days",
            "30",
            "--price-fen",
            "1990",
            "--json",
        )
    )
    assert plan["price_fen"] == 1990 and plan["active"] is True
    changed = as_json(
        await cli("plans", "update", str(plan["id"]), "--price-fen", "2990", "--json")
    )
    assert changed["price_fen"] == 2990
    assert as_json(await cli("plans", "disable", str(plan["id"]), "--json"))["active"] is False
    listed = as_json(await cli("plans", "list", "--inactive", "--size", "100", "--json"))
    assert plan["id"] in [p["id"] for p in listed["items"]]
    assert (await cli("plans", "show", str(plan["id"]))).exit_code == 0

    title = "cli-video-" + uuid.uuid4().hex[:8]
    video = as_json(
        await cli("videos", "create", "--title", title, "--media-id", "m-" + title, "--json")
    )
    assert video["status"] == "draft" and video["media_status"] == "ready"
    assert (
        as_json(await cli("videos", "publish", str(video["id"]), "--json"))["status"] == "published"
    )
    found = as_json(await cli("videos", "list", "--q", title, "--json"))
    assert [v["id"] for v in found["items"]] == [video["id"]]
    assert (
        as_json(await cli("videos", "disable", str(video["id"]), "--json"))["status"] == "offline"
    )
    assert (await cli("videos", "delete", str(video["id"]))).exit_code == 0
    missing = await cli("videos", "show", str(video["id"]))
    assert missing.exit_code != 0 and "视频不存在" in missing.output


async def test_cli_open_api_groups(cli: Cli, make_account: MakeAccount) -> None:
    user = await make_account()
    ability = "cli.t" + uuid.uuid4().hex[:6]
    price = as_json(await cli("prices", "set", ability, "1000", "--description", "测试", "--json"))
    assert price["price"] == 1000
    assert ability in [p["ability"] for p in as_json(await cli("prices", "list", "--json"))]

    name = "cli-" + uuid.uuid4().hex[:8]
    channel = as_json(
        await cli(
            "channels",
            "create",
            "--name",
            name,
            "--provider",
            "tencent",
            "--credential",
            "secret_id=abc",
            "--json",
        )
    )
    assert channel["has_credentials"] is True and "credentials" not in channel
    off = as_json(await cli("channels", "disable", str(channel["id"]), "--json"))
    assert off["status"] == "disabled"
    assert (await cli("channels", "list")).exit_code == 0

    token = as_json(
        await cli("tokens", "create", "--user-id", str(user.id), "--name", "t", "--json")
    )
    assert token["key"] and "key_hash" not in token
    off = as_json(await cli("tokens", "disable", str(token["id"]), "--json"))
    assert off["status"] == "disabled"
    mine = as_json(await cli("tokens", "list", "--user-id", str(user.id), "--json"))
    assert [t["id"] for t in mine] == [token["id"]]

    ref = "cli-" + uuid.uuid4().hex
    entry = as_json(
        await cli("wallet", "top-up", str(user.id), "700", "--reference", ref, "--json")
    )
    assert entry["balance_after"] == 700
    again = as_json(
        await cli("wallet", "top-up", str(user.id), "700", "--reference", ref, "--json")
    )
    assert again["replayed"] is True
    assert as_json(await cli("wallet", "show", str(user.id), "--json"))["balance"] == 700
    zero = await cli("wallet", "top-up", str(user.id), "0")
    assert zero.exit_code != 0
    assert len(as_json(await cli("wallet", "ledger", str(user.id), "--json"))) == 1

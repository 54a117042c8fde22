"""Daily bills: downloaded from the stand-ins through the SDKs (Alipay: URL query, then
a zip of GBK CSV; WeChat: tradebill, then the gzip'd file checked against its SHA1),
parsed, reconciled against the local payments and refunds of that Beijing day, and
stored with the provider's file. Bad files are refused whole: nothing is stored."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import subprocess
import sys
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.commerce import Commerce
from app.payments import PaymentProviderError
from app.payments.clock import BEIJING
from app.sandbox.payments import AlipayStub, BillLine, WechatPayStub
from luser_db import Db

from .conftest import Buyer, Order, post_alipay, post_wechat

# Each test reconciles its own day, far from the other tests' payments (made "now").
_DAYS = iter(date(2020, 1, 1) + timedelta(days=n) for n in range(1000))


async def _paid_on(
    shop: httpx.AsyncClient,
    stub: AlipayStub | WechatPayStub,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
    day: date,
) -> str:
    """A paid order whose payment is moved to ``day`` (noon, Beijing); its out_trade_no."""
    if isinstance(stub, AlipayStub):
        checkout = await order_for(buyer, plan, "alipay", "page")
        no = checkout["payment"]["out_trade_no"]
        stub.accept_pay_url(checkout["payment"]["pay_url"])
        stub.mark_paid(no)
        assert (await post_alipay(shop, stub.notification(no))).text == "success"
    else:
        checkout = await order_for(buyer, plan, "wechat", "native")
        no = checkout["payment"]["out_trade_no"]
        stub.mark_paid(no)
        assert (await post_wechat(shop, *stub.notification(no))).status_code == 204
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=BEIJING)
    await Db.execute("UPDATE payment_attempts SET paid_at = ? WHERE out_trade_no = ?", noon, no)
    return no


async def _refund_on(
    shop: httpx.AsyncClient, admin: Buyer, out_trade_no: str, amount_fen: int, day: date
) -> str:
    order_id = await Db.query_int(
        "SELECT order_id FROM payment_attempts WHERE out_trade_no = ?", out_trade_no
    )
    r = await shop.post(
        f"/api/admin/orders/{order_id}/refund",
        headers=admin.headers,
        json={"amount_fen": amount_fen},
    )
    assert r.status_code == 200, r.text
    refund = r.json()["data"]
    moment = datetime(day.year, day.month, day.day, 13, tzinfo=BEIJING)
    await Db.execute("UPDATE refunds SET created_at = ? WHERE id = ?", moment, refund["id"])
    no: str = refund["out_refund_no"]
    return no


async def _bill_rows() -> int:
    return await Db.query_int("SELECT count(*) FROM payment_bills") or 0


def _findings(report: Any) -> set[tuple[str, str, str, int | None, int | None]]:
    return {
        (f.kind, f.row_type, f.out_refund_no or f.out_trade_no, f.local_fen, f.bill_fen)
        for f in report.findings
    }


async def test_wechat_bill_with_one_missing_one_extra_one_mismatched_row(
    shop: httpx.AsyncClient,
    shop_wechat: WechatPayStub,
    shop_admin: Buyer,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
    commerce: Commerce,
) -> None:
    day = next(_DAYS)
    price = plan["price_fen"]  # 3000 fen = "30.00"
    good, wrong, absent = [
        await _paid_on(shop, shop_wechat, buyer, plan, order_for, day) for _ in range(3)
    ]
    refund_no = await _refund_on(shop, shop_admin, good, 1000, day)
    lines: list[BillLine] = [
        ("trade", good, "30.00", None),
        ("refund", good, "10.00", refund_no),
        ("trade", wrong, "29.99", None),  # amount differs
        ("trade", "PNOTOURS0000001", "5.00", None),  # only the provider knows it
        # `absent` is paid here but not in the bill
    ]
    text = shop_wechat.publish_bill(day.isoformat(), lines)
    report = await commerce.reconciler.reconcile_bill("wechat", day)
    assert report.rows == 4
    assert _findings(report) == {
        ("missing", "trade", absent, price, None),
        ("extra", "trade", "PNOTOURS0000001", None, 500),
        ("mismatch", "trade", wrong, price, 2999),
    }
    stored = await Db.find_first("SELECT * FROM payment_bills WHERE id = ?", report.bill_id)
    assert stored is not None
    # The provider's file exactly as downloaded (gzip), kept for audit.
    assert gzip.decompress(stored["raw"]).decode() == text
    assert stored["sha256"] == hashlib.sha256(stored["raw"]).hexdigest()
    assert (stored["missing"], stored["extra"], stored["mismatched"]) == (1, 1, 1)
    findings = stored["findings"]
    assert len(json.loads(findings) if isinstance(findings, str) else findings) == 3
    # The fund-flow bill rode along: hash-checked, format-checked, kept for audit.
    audit = await Db.find_first(
        "SELECT * FROM payment_bills WHERE bill_type = 'fundflow' AND bill_date = ?", day
    )
    assert audit is not None and audit["provider"] == "wechat" and audit["row_count"] == 4
    assert gzip.decompress(audit["raw"]).decode() == shop_wechat.fundflow_bills[day.isoformat()]
    assert stored["bill_type"] == "trade"
    paths = [c.path.split("?")[0] for c in shop_wechat.calls[-4:]]
    assert paths == [
        "/v3/bill/tradebill",
        "/v3/billdownload/file",
        "/v3/bill/fundflowbill",
        "/v3/billdownload/file",
    ]
    assert all(c.authorized for c in shop_wechat.calls[-4:])


async def test_alipay_bill_through_the_admin_endpoint(
    shop: httpx.AsyncClient,
    shop_alipay: AlipayStub,
    shop_admin: Buyer,
    buyer: Buyer,
    plan: dict[str, Any],
    order_for: Order,
) -> None:
    day = next(_DAYS)
    good, wrong, absent = [
        await _paid_on(shop, shop_alipay, buyer, plan, order_for, day) for _ in range(3)
    ]
    refund_no = await _refund_on(shop, shop_admin, wrong, 500, day)
    shop_alipay.publish_bill(
        day.isoformat(),
        [
            ("trade", good, "30.00", None),
            ("trade", wrong, "30.00", None),
            ("refund", wrong, "-4.00", refund_no),  # the refund's amount differs
            ("refund", good, "-1.00", "RNOTOURS000001"),  # a refund we never made
        ],
    )
    r = await shop.post(
        "/api/admin/payments/bills",
        headers=shop_admin.headers,
        json={"provider": "alipay", "date": day.isoformat()},
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert (data["rows"], data["missing"], data["extra"], data["mismatch"]) == (4, 1, 1, 1)
    assert {
        (f["kind"], f["row_type"], f["out_refund_no"] or f["out_trade_no"])
        for f in data["findings"]
    } == {
        ("missing", "trade", absent),
        ("extra", "refund", "RNOTOURS000001"),
        ("mismatch", "refund", refund_no),
    }
    stored = await Db.find_first("SELECT raw FROM payment_bills WHERE id = ?", data["bill_id"])
    assert stored is not None and stored["raw"] == shop_alipay.bills[day.isoformat()]
    assert shop_alipay.calls[-1].path == "alipay.data.dataservice.bill.downloadurl.query"
    r = await shop.post(
        "/api/admin/payments/bills",
        headers=buyer.headers,
        json={"provider": "alipay", "date": day.isoformat()},
    )
    assert r.status_code == 403


_WECHAT_BAD: list[tuple[str, list[BillLine], str]] = [
    ("malformed line", [("trade", "PBAD00000000001", "30.00", None), "`just,`three,`fields"], "行"),
    ("no backticks", [",".join(["x"] * 27)], "格式错误"),
    ("one decimal", [("trade", "PBAD00000000002", "30.0", None)], "金额"),
    ("not a number", [("trade", "PBAD00000000003", "3O.00", None)], "金额"),
    ("zero", [("trade", "PBAD00000000004", "0.00", None)], "金额"),
    ("negative", [("trade", "PBAD00000000005", "-1.00", None)], "金额"),
    ("twice", [("trade", "PBAD00000000006", "1.00", None)] * 2, "重复"),
]


@pytest.mark.parametrize(("case", "lines", "words"), _WECHAT_BAD, ids=[c[0] for c in _WECHAT_BAD])
async def test_bad_wechat_bills_are_refused_whole(
    case: str, lines: list[BillLine], words: str, shop_wechat: WechatPayStub, commerce: Commerce
) -> None:
    day = next(_DAYS)
    shop_wechat.publish_bill(day.isoformat(), [("trade", "PGOOD000000001", "1.00", None), *lines])
    before = await _bill_rows()
    with pytest.raises(PaymentProviderError) as info:
        await commerce.reconciler.reconcile_bill("wechat", day)
    assert info.value.provider_code == "BILL_INVALID" and words in info.value.message
    assert await _bill_rows() == before


@pytest.mark.parametrize(
    "line",
    ["`2026-12-03,`only,`three", ",".join(["`x"] * 5 + ["`转账", "`1.00"] + ["`x"] * 4)],
    ids=["malformed", "unknown direction"],
)
async def test_a_bad_fundflow_bill_fails_the_whole_run(
    line: str, shop_wechat: WechatPayStub, commerce: Commerce
) -> None:
    day = next(_DAYS)
    shop_wechat.publish_bill(day.isoformat(), [("trade", "PFLOW000000001", "1.00", None)])
    shop_wechat.publish_fundflow_bill(day.isoformat(), [line])
    before = await _bill_rows()
    with pytest.raises(PaymentProviderError) as info:
        await commerce.reconciler.reconcile_bill("wechat", day)
    assert "资金账单" in info.value.message
    assert await _bill_rows() == before  # not even the (good) trade bill


async def test_wechat_bill_in_a_currency_wechat_never_sends(
    shop_wechat: WechatPayStub, commerce: Commerce
) -> None:
    day = next(_DAYS)
    shop_wechat.publish_bill(day.isoformat(), [("trade", "PUSD0000000001", "1.00", None)], "USD")
    before = await _bill_rows()
    with pytest.raises(PaymentProviderError) as info:
        await commerce.reconciler.reconcile_bill("wechat", day)
    assert "币种" in info.value.message
    assert await _bill_rows() == before


async def test_wechat_bill_that_fails_its_hash_is_refused(
    shop_wechat: WechatPayStub, commerce: Commerce
) -> None:
    day = next(_DAYS)
    shop_wechat.publish_bill(day.isoformat(), [("trade", "PHASH000000001", "1.00", None)])
    before = await _bill_rows()
    shop_wechat.corrupt_bill_download = True
    try:
        with pytest.raises(PaymentProviderError) as info:
            await commerce.reconciler.reconcile_bill("wechat", day)
    finally:
        shop_wechat.corrupt_bill_download = False
    assert "摘要" in info.value.message
    assert await _bill_rows() == before


@pytest.mark.parametrize(
    "line",
    [
        "2026abc,PA1,交易,VIP",  # too few fields
        ",PA2,转账," + "," * 21,  # a business type Alipay's trade bill never has
        ",PA3,交易,VIP,,,,,,,,30.5,30.5" + "," * 12,  # one decimal
        ",PA4,退款,VIP,,,,,,,,,5.00" + "," * 12,  # a refund amount that is not negative
    ],
)
async def test_bad_alipay_bills_are_refused_whole(
    line: str, shop_alipay: AlipayStub, commerce: Commerce
) -> None:
    day = next(_DAYS)
    shop_alipay.publish_bill(day.isoformat(), [("trade", "PGOOD000000002", "1.00", None), line])
    before = await _bill_rows()
    with pytest.raises(PaymentProviderError) as info:
        await commerce.reconciler.reconcile_bill("alipay", day)
    assert info.value.provider_code == "BILL_INVALID"
    assert await _bill_rows() == before


async def test_a_day_without_a_bill(
    shop: httpx.AsyncClient, shop_admin: Buyer, commerce: Commerce
) -> None:
    before = await _bill_rows()
    for provider, code in (("wechat", "NO_STATEMENT_EXIST"), ("alipay", "isp.bill_not_exist")):
        r = await shop.post(
            "/api/admin/payments/bills",
            headers=shop_admin.headers,
            json={"provider": provider, "date": "2019-01-01"},
        )
        assert r.status_code == 502, r.text
        assert r.json()["error"]["details"]["code"] == code
    for body in ({"provider": "paypal", "date": "2019-01-01"}, {"provider": "wechat"}):
        r = await shop.post("/api/admin/payments/bills", headers=shop_admin.headers, json=body)
        assert r.status_code == 422
    assert await _bill_rows() == before


async def test_cli_reconcile_bill_in_its_own_process(
    shop_db: str, shop_wechat: WechatPayStub
) -> None:
    day = next(_DAYS)
    shop_wechat.publish_bill(day.isoformat(), [("trade", "PCLI0000000001", "2.00", None)])
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUSER")}
    env.update({"LUSER_ENV": "test", "LUSER__DATABASE__URL": shop_db})
    for name, value in shop_wechat.config().model_dump().items():
        plain = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        text = str(plain).lower() if isinstance(plain, bool) else str(plain)
        env[f"LUSER__PAYMENT__WECHAT__{name.upper()}"] = text
    argv = ["payments", "reconcile-bill", "--provider", "wechat", "--date", day.isoformat()]
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "from app.cli import main; main()", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "extra=1" in result.stdout and "PCLI0000000001" in result.stdout

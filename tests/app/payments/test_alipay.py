"""AlipayProvider against the 127.0.0.1 stub gateway (python-alipay-sdk, RSA2)."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from app.payments import (
    AlipayProvider,
    NotifyStatus,
    PaymentMethod,
    PaymentNotifyInvalid,
    PaymentNotifyMismatch,
    RefundStatus,
    TradeStatus,
)
from app.payments.clock import BEIJING, parse_beijing
from app.sandbox.payments import AlipayStub, KeyPair, replace_form_fields
from luser_common.errors import ConfigError, ExternalServiceError, NetworkError, ValidationError


def _params(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True))


def _verify_with_app_public_key(params: dict[str, str], app_public_pem: str) -> None:
    """Check the merchant's RSA2 signature independently of the SDK and the stub."""
    fields = dict(params)
    signature = fields.pop("sign")
    unsigned = "&".join(f"{k}={fields[k]}" for k in sorted(fields))
    key = load_pem_public_key(app_public_pem.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(base64.b64decode(signature), unsigned.encode(), padding.PKCS1v15(), hashes.SHA256())


# -- creating payments -----------------------------------------------------------------


async def test_page_pay_url_is_signed_with_the_app_key(
    alipay: AlipayProvider, alipay_stub: AlipayStub
) -> None:
    launch = await alipay.create_payment("ORD20240001", "VIP 月卡", 3000, "page")
    assert launch.method is PaymentMethod.PAGE and launch.amount_fen == 3000
    assert launch.pay_url is not None
    assert launch.pay_url.startswith(alipay_stub.gateway_url + "?")
    params = _params(launch.pay_url)
    _verify_with_app_public_key(params, alipay_stub.app_keys.public_pem)
    assert params["method"] == "alipay.trade.page.pay"
    assert params["sign_type"] == "RSA2" and params["app_id"] == alipay_stub.app_id
    assert params["notify_url"] == "https://shop.example.com/notify/alipay"
    assert params["return_url"] == "https://shop.example.com/return/alipay"
    biz = json.loads(params["biz_content"])
    assert biz == {
        "subject": "VIP 月卡",
        "out_trade_no": "ORD20240001",
        "total_amount": "30.00",
        "product_code": "FAST_INSTANT_TRADE_PAY",
    }
    # The stub's cashier accepts it too and opens the trade.
    assert alipay_stub.accept_pay_url(launch.pay_url)["total_amount"] == "30.00"


async def test_wap_pay_url(alipay: AlipayProvider, alipay_stub: AlipayStub) -> None:
    launch = await alipay.create_payment(
        "ORD20240002", "VIP", 1, PaymentMethod.WAP, return_url="https://m.example.com/back"
    )
    assert launch.pay_url is not None
    params = _params(launch.pay_url)
    _verify_with_app_public_key(params, alipay_stub.app_keys.public_pem)
    assert params["method"] == "alipay.trade.wap.pay"
    assert params["return_url"] == "https://m.example.com/back"
    biz = json.loads(params["biz_content"])
    assert biz["product_code"] == "QUICK_WAP_PAY" and biz["total_amount"] == "0.01"


async def test_expire_at_is_sent_in_beijing_time(alipay: AlipayProvider) -> None:
    expire = datetime(2024, 5, 1, 4, 30, tzinfo=UTC)
    launch = await alipay.create_payment("ORD20240003", "VIP", 3000, "page", expire_at=expire)
    assert launch.pay_url is not None
    biz = json.loads(_params(launch.pay_url)["biz_content"])
    assert biz["time_expire"] == "2024-05-01 12:30:00"
    with pytest.raises(ValidationError):
        await alipay.create_payment(
            "ORD20240003", "VIP", 3000, "page", expire_at=datetime(2024, 5, 1)
        )


async def test_request_timestamp_is_beijing_whatever_the_host_tz(
    alipay: AlipayProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK stamps naive local time; we re-stamp in Beijing time."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        launch = await alipay.create_payment("ORD20240004", "VIP", 3000, "page")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert launch.pay_url is not None
    stamped = parse_beijing(_params(launch.pay_url)["timestamp"])
    assert abs(stamped - datetime.now(UTC)) < timedelta(minutes=5)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"method": "native"}, "method"),
        ({"method": "bitcoin"}, "method"),
        ({"out_trade_no": "bad no!"}, "out_trade_no"),
        ({"out_trade_no": "x" * 65}, "out_trade_no"),
        ({"amount_fen": 30.0}, "amount_fen"),
        ({"amount_fen": 0}, "amount_fen"),
        ({"subject": "  "}, "subject"),
    ],
)
async def test_create_payment_rejects_bad_arguments(
    alipay: AlipayProvider, kwargs: dict[str, object], field: str
) -> None:
    args: dict[str, object] = {
        "out_trade_no": "ORD1",
        "subject": "VIP",
        "amount_fen": 3000,
        "method": "page",
    }
    args.update(kwargs)
    with pytest.raises(ValidationError) as info:
        await alipay.create_payment(**args)  # type: ignore[arg-type]
    assert info.value.field == field


# -- query / close / refund ------------------------------------------------------------


async def test_query_paid_trade(alipay: AlipayProvider, alipay_stub: AlipayStub) -> None:
    alipay_stub.add_trade("ORD20240001", 3000)
    trade = alipay_stub.mark_paid("ORD20240001")
    state = await alipay.query("ORD20240001")
    assert state.status is TradeStatus.SUCCEEDED
    assert state.amount_fen == 3000 and state.trade_no == trade["trade_no"]
    assert state.paid_at is not None and state.paid_at.utcoffset() == timedelta(hours=8)
    call = alipay_stub.calls[-1]
    assert call.authorized and call.path == "alipay.trade.query"
    assert call.params["biz_content"] == {"out_trade_no": "ORD20240001"}


@pytest.mark.parametrize(
    ("stub_status", "expected"),
    [
        ("WAIT_BUYER_PAY", TradeStatus.PENDING),
        ("TRADE_FINISHED", TradeStatus.SUCCEEDED),
        ("TRADE_CLOSED", TradeStatus.CLOSED),
    ],
)
async def test_query_maps_statuses(
    alipay: AlipayProvider, alipay_stub: AlipayStub, stub_status: str, expected: TradeStatus
) -> None:
    alipay_stub.add_trade("ORD20240001", 3000, status=stub_status)
    assert (await alipay.query("ORD20240001")).status is expected


async def test_query_unknown_trade_is_not_found(alipay: AlipayProvider) -> None:
    state = await alipay.query("NOSUCHORDER")
    assert state.status is TradeStatus.NOT_FOUND and state.amount_fen is None


async def test_query_business_failure_is_external_error(
    alipay: AlipayProvider, alipay_stub: AlipayStub
) -> None:
    alipay_stub.overrides["alipay.trade.query"] = {
        "code": "20000",
        "msg": "Service Currently Unavailable",
        "sub_code": "ACQ.SYSTEM_ERROR",
        "sub_msg": "系统错误",
    }
    with pytest.raises(ExternalServiceError) as info:
        await alipay.query("ORD20240001")
    assert info.value.status_code == 502
    assert info.value.details["code"] == "ACQ.SYSTEM_ERROR"
    assert info.value.details["provider"] == "alipay"


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (
            200,
            '{"error_response":{"code":"40002","msg":"Invalid Arguments",'
            '"sub_code":"isv.invalid-app-id","sub_msg":"无效的AppID参数"}}',
            "isv.invalid-app-id",
        ),
        (200, '{"alipay_trade_query_response":{"code":"40004","msg":"x"}}', "40004"),
        (200, "<html>gateway busy</html>", "BAD_RESPONSE"),
        (200, "{}", "BAD_RESPONSE"),
        (502, "Bad Gateway", "HTTP_502"),
    ],
)
async def test_gateway_errors_are_external_errors(
    alipay: AlipayProvider, alipay_stub: AlipayStub, status: int, body: str, code: str
) -> None:
    alipay_stub.raw_reply = (status, body.encode())
    with pytest.raises(ExternalServiceError) as info:
        await alipay.query("ORD20240001")
    assert info.value.status_code == 502 and info.value.details["code"] == code


async def test_forged_gateway_reply_is_refused(
    alipay: AlipayProvider, alipay_stub: AlipayStub, keys: dict[str, KeyPair]
) -> None:
    alipay_stub.add_trade("ORD20240001", 3000, status="TRADE_SUCCESS")
    alipay_stub.reply_keys = keys["evil"]
    with pytest.raises(ExternalServiceError) as info:
        await alipay.query("ORD20240001")
    assert info.value.details["code"] == "SIGNATURE_INVALID"


async def test_unreachable_gateway_is_network_error(
    alipay_stub: AlipayStub, closed_port: int
) -> None:
    provider = AlipayProvider(
        alipay_stub.config(gateway_url=f"http://127.0.0.1:{closed_port}/gateway.do")
    )
    with pytest.raises(NetworkError) as info:
        await provider.query("ORD20240001")
    assert info.value.status_code == 503 and info.value.details["provider"] == "alipay"


async def test_request_signed_with_wrong_key_is_refused_by_gateway(
    alipay_stub: AlipayStub, keys: dict[str, KeyPair]
) -> None:
    from pydantic import SecretStr

    evil = SecretStr(keys["evil"].private_pem)
    provider = AlipayProvider(alipay_stub.config(app_private_key=evil))
    with pytest.raises(ExternalServiceError) as info:
        await provider.query("ORD20240001")
    assert info.value.details["code"] == "isv.invalid-signature"
    assert alipay_stub.calls[-1].authorized is False


async def test_close(alipay: AlipayProvider, alipay_stub: AlipayStub) -> None:
    alipay_stub.add_trade("ORD20240001", 3000)
    await alipay.close("ORD20240001")
    assert alipay_stub.trades["ORD20240001"]["trade_status"] == "TRADE_CLOSED"
    assert alipay_stub.calls[-1].path == "alipay.trade.close"
    await alipay.close("NEVEROPENED")  # nothing to close at Alipay: fine


async def test_close_paid_trade_fails(alipay: AlipayProvider, alipay_stub: AlipayStub) -> None:
    alipay_stub.add_trade("ORD20240001", 3000, status="TRADE_SUCCESS")
    with pytest.raises(ExternalServiceError) as info:
        await alipay.close("ORD20240001")
    assert info.value.details["code"] == "ACQ.TRADE_STATUS_ERROR"


async def test_refund(alipay: AlipayProvider, alipay_stub: AlipayStub) -> None:
    alipay_stub.add_trade("ORD20240001", 3000, status="TRADE_SUCCESS")
    result = await alipay.refund("ORD20240001", "RF20240001", 1000, 3000, reason="用户申请")
    assert result.status is RefundStatus.SUCCEEDED and result.refund_fen == 1000
    assert result.raw["refund_fee"] == "10.00"
    biz = alipay_stub.calls[-1].params["biz_content"]
    assert biz == {
        "refund_amount": "10.00",
        "out_trade_no": "ORD20240001",
        "out_request_no": "RF20240001",
        "refund_reason": "用户申请",
    }
    again = await alipay.refund("ORD20240001", "RF20240001", 1000, 3000)
    assert again.raw["fund_change"] == "N"  # same out_refund_no: refunded once


async def test_refund_checks_amounts_before_calling(
    alipay: AlipayProvider, alipay_stub: AlipayStub
) -> None:
    for refund, total in ((3001, 3000), (0, 3000), (10.0, 3000)):
        with pytest.raises(ValidationError):
            await alipay.refund("ORD20240001", "RF1", refund, total)  # type: ignore[arg-type]
    assert alipay_stub.calls == []


async def test_refund_refused_by_provider(alipay: AlipayProvider, alipay_stub: AlipayStub) -> None:
    alipay_stub.add_trade("ORD20240001", 3000)  # not paid
    with pytest.raises(ExternalServiceError) as info:
        await alipay.refund("ORD20240001", "RF20240001", 1000, 3000)
    assert info.value.details["code"] == "ACQ.TRADE_STATUS_ERROR"


# -- notifications ---------------------------------------------------------------------


async def test_notification_accepted(alipay: AlipayProvider, alipay_stub: AlipayStub) -> None:
    alipay_stub.add_trade("ORD20240001", 3000)
    trade = alipay_stub.mark_paid("ORD20240001")
    body = alipay_stub.notification("ORD20240001")
    note = await alipay.verify_notification({"content-type": "x"}, body)
    assert note.provider == "alipay" and note.status is NotifyStatus.SUCCEEDED and note.is_paid
    assert note.out_trade_no == "ORD20240001" and note.trade_no == trade["trade_no"]
    assert note.amount_fen == 3000 and note.currency == "CNY"
    assert note.app_id == alipay_stub.app_id and note.mch_id == alipay_stub.seller_id
    assert note.paid_at == parse_beijing(trade["send_pay_date"])
    assert note.paid_at is not None and note.paid_at.tzinfo is BEIJING
    assert note.notification_id == trade["notify_ids"]["TRADE_SUCCESS"]
    assert note.raw["sign_type"] == "RSA2" and "sign" in note.raw
    note.ensure_amount(3000)
    # A resend carries the same notify_id.
    again = await alipay.verify_notification({}, alipay_stub.notification("ORD20240001"))
    assert again.notification_id == note.notification_id


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("TRADE_FINISHED", NotifyStatus.SUCCEEDED),
        ("TRADE_CLOSED", NotifyStatus.CLOSED),
        ("WAIT_BUYER_PAY", NotifyStatus.OTHER),
    ],
)
async def test_notification_statuses(
    alipay: AlipayProvider, alipay_stub: AlipayStub, status: str, expected: NotifyStatus
) -> None:
    alipay_stub.add_trade("ORD20240001", 3000, status=status)
    note = await alipay.verify_notification({}, alipay_stub.notification("ORD20240001"))
    assert note.status is expected


async def test_refund_notification(alipay: AlipayProvider, alipay_stub: AlipayStub) -> None:
    alipay_stub.add_trade("ORD20240001", 3000, status="TRADE_SUCCESS")
    body = alipay_stub.notification(
        "ORD20240001",
        refund_fee="10.00",
        gmt_refund="2024-05-02 08:00:00.000",
        out_biz_no="RF20240001",
    )
    note = await alipay.verify_notification({}, body)
    assert note.status is NotifyStatus.REFUNDED
    assert note.refund_fen == 1000 and note.out_refund_no == "RF20240001"


async def test_forged_signature_refused(
    alipay: AlipayProvider, alipay_stub: AlipayStub, keys: dict[str, KeyPair]
) -> None:
    alipay_stub.add_trade("ORD20240001", 3000, status="TRADE_SUCCESS")
    body = alipay_stub.notification("ORD20240001", keys=keys["evil"])
    with pytest.raises(PaymentNotifyInvalid) as info:
        await alipay.verify_notification({}, body)
    assert info.value.code == "PAYMENT_NOTIFY_INVALID" and info.value.reason == "signature"
    assert info.value.status_code == 400


async def test_tampered_amount_refused(alipay: AlipayProvider, alipay_stub: AlipayStub) -> None:
    alipay_stub.add_trade("ORD20240001", 3000, status="TRADE_SUCCESS")
    body = replace_form_fields(alipay_stub.notification("ORD20240001"), total_amount="0.01")
    with pytest.raises(PaymentNotifyInvalid) as info:
        await alipay.verify_notification({}, body)
    assert info.value.reason == "signature"


@pytest.mark.parametrize(("field", "reason"), [("app_id", "app_id"), ("seller_id", "seller_id")])
async def test_other_app_or_seller_refused(
    alipay: AlipayProvider, alipay_stub: AlipayStub, field: str, reason: str
) -> None:
    alipay_stub.add_trade("ORD20240001", 3000, status="TRADE_SUCCESS")
    body = alipay_stub.notification(
        "ORD20240001",
        **{field: "2021999999999999"},  # type: ignore[arg-type]
    )
    with pytest.raises(PaymentNotifyMismatch) as info:
        await alipay.verify_notification({}, body)
    assert info.value.code == "PAYMENT_NOTIFY_MISMATCH" and info.value.reason == reason


async def test_wrong_amount_for_the_order(alipay: AlipayProvider, alipay_stub: AlipayStub) -> None:
    alipay_stub.add_trade("ORD20240001", 1, status="TRADE_SUCCESS")
    note = await alipay.verify_notification({}, alipay_stub.notification("ORD20240001"))
    with pytest.raises(PaymentNotifyMismatch) as info:
        note.ensure_amount(3000)
    assert info.value.reason == "amount"
    with pytest.raises(PaymentNotifyMismatch) as info:
        note.ensure_amount(1, currency="USD")
    assert info.value.reason == "currency"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "signature"),
        (b"\xff\xfe", "format"),
        (b"notify_id=1&notify_id=2&sign=abc", "format"),
        (b"out_trade_no=ORD1&total_amount=30.00", "signature"),  # no sign at all
        (b"a=b&sign=abc&sign_type=RSA", "sign_type"),
        (b"a=b&sign=!!!notbase64", "signature"),
    ],
)
async def test_malformed_notifications_refused(
    alipay: AlipayProvider, body: bytes, reason: str
) -> None:
    with pytest.raises(PaymentNotifyInvalid) as info:
        await alipay.verify_notification({}, body)
    assert (type(info.value), info.value.status_code, info.value.reason) == (
        PaymentNotifyInvalid,
        400,
        reason,
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"notify_id": None},
        {"out_trade_no": None},
        {"total_amount": "30.001"},
        {"total_amount": "-30.00"},
        {"gmt_payment": "yesterday"},
    ],
)
async def test_signed_but_malformed_fields_refused(
    alipay: AlipayProvider, alipay_stub: AlipayStub, overrides: dict[str, str | None]
) -> None:
    alipay_stub.add_trade("ORD20240001", 3000, status="TRADE_SUCCESS")
    body = alipay_stub.notification("ORD20240001", **overrides)  # type: ignore[arg-type]
    with pytest.raises(PaymentNotifyInvalid) as info:
        await alipay.verify_notification({}, body)
    assert info.value.reason == "format"


def test_replies(alipay: AlipayProvider) -> None:
    ok = alipay.success_reply()
    assert ok.status_code == 200 and ok.body == b"success"
    assert ok.headers["content-type"].startswith("text/plain")
    bad = alipay.failure_reply(PaymentNotifyInvalid("alipay", "signature"))
    assert bad.status_code == 200 and bad.body == b"failure"
    assert alipay.failure_reply().body == b"failure"


# -- configuration ---------------------------------------------------------------------


def _bare(pem: str) -> str:
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


async def test_bare_base64_keys_are_accepted(alipay_stub: AlipayStub) -> None:
    from pydantic import SecretStr

    provider = AlipayProvider(
        alipay_stub.config(
            app_private_key=SecretStr(_bare(alipay_stub.app_keys.private_pem)),
            alipay_public_key=_bare(alipay_stub.alipay_keys.public_pem),
        )
    )
    launch = await provider.create_payment("ORD20240001", "VIP", 3000, "page")
    assert launch.pay_url is not None
    _verify_with_app_public_key(_params(launch.pay_url), alipay_stub.app_keys.public_pem)
    alipay_stub.add_trade("ORD20240001", 3000, status="TRADE_SUCCESS")
    assert (await provider.query("ORD20240001")).status is TradeStatus.SUCCEEDED


@pytest.mark.parametrize(
    "overrides",
    [
        {"app_id": ""},
        {"alipay_public_key": ""},
        {"alipay_public_key": "not a key"},
        {"alipay_public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"},
    ],
)
def test_bad_config_is_config_error(alipay_stub: AlipayStub, overrides: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        AlipayProvider(alipay_stub.config(**overrides))


def test_sandbox_and_default_gateways(alipay_stub: AlipayStub) -> None:
    """Constructing never contacts anything; the gateway only changes the URL."""
    assert AlipayProvider(alipay_stub.config(gateway_url="")).gateway == (
        "https://openapi.alipay.com/gateway.do"
    )
    assert "sandbox" in AlipayProvider(alipay_stub.config(gateway_url="", sandbox=True)).gateway

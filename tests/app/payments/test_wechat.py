"""WechatPayProvider (public-key mode) against the 127.0.0.1 WeChat Pay v3 stub."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import SecretStr
from starlette.datastructures import Headers

from app.payments import (
    NotifyStatus,
    PaymentMethod,
    PaymentNotifyInvalid,
    PaymentNotifyMismatch,
    PaymentNotifyStale,
    PaymentProviderError,
    PaymentProviderUnavailable,
    RefundStatus,
    TradeStatus,
    WechatPayProvider,
)
from app.sandbox.payments import KeyPair, WechatPayStub
from luser_common.errors import ConfigError, ExternalServiceError, NetworkError, ValidationError


def _verify_merchant_signature(public_pem: str, message: str, signature: str) -> None:
    key = load_pem_public_key(public_pem.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(base64.b64decode(signature), message.encode(), padding.PKCS1v15(), hashes.SHA256())


@pytest.fixture
def no_sdk_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail loudly if the SDK makes any HTTP request (e.g. a certificate download)."""
    attempts: list[str] = []

    def refuse(url: str, *args: Any, **kwargs: Any) -> Any:
        attempts.append(url)
        raise AssertionError(f"unexpected HTTP request to {url}")

    monkeypatch.setattr(requests, "get", refuse)
    monkeypatch.setattr(requests, "post", refuse)
    return attempts


# -- creating payments -----------------------------------------------------------------


async def test_native_pay_returns_code_url(
    wechat: WechatPayProvider, wechat_stub: WechatPayStub
) -> None:
    launch = await wechat.create_payment("ORD20240001", "VIP 月卡", 3000, "native")
    assert launch.method is PaymentMethod.NATIVE and launch.amount_fen == 3000
    assert launch.code_url is not None and launch.code_url.startswith("weixin://wxpay/bizpayurl")
    call = wechat_stub.calls[-1]
    # The stub checked the SDK's Authorization signature with the merchant public key.
    assert call.authorized and call.path == "/v3/pay/transactions/native"
    assert call.params["amount"] == {"total": 3000, "currency": "CNY"}
    assert call.params["mchid"] == wechat_stub.mch_id and call.params["appid"] == wechat_stub.app_id
    assert call.params["notify_url"] == "https://shop.example.com/notify/wechat"
    assert call.params["description"] == "VIP 月卡"


async def test_jsapi_params_are_signed_with_the_merchant_key(
    wechat: WechatPayProvider, wechat_stub: WechatPayStub
) -> None:
    launch = await wechat.create_payment(
        "ORD20240002", "VIP", 3000, PaymentMethod.JSAPI, payer_openid="oUpF8uMuAJO_M2pxb1Q9"
    )
    params = launch.jsapi_params
    assert params is not None and launch.prepay_id is not None
    assert set(params) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert params["appId"] == wechat_stub.app_id and params["signType"] == "RSA"
    assert params["package"] == f"prepay_id={launch.prepay_id}"
    message = "".join(f"{params[k]}\n" for k in ("appId", "timeStamp", "nonceStr", "package"))
    _verify_merchant_signature(wechat_stub.merchant_keys.public_pem, message, params["paySign"])
    call = wechat_stub.calls[-1]
    assert call.path == "/v3/pay/transactions/jsapi"
    assert call.params["payer"] == {"openid": "oUpF8uMuAJO_M2pxb1Q9"}


async def test_jsapi_needs_an_openid(wechat: WechatPayProvider, wechat_stub: WechatPayStub) -> None:
    with pytest.raises(ValidationError) as info:
        await wechat.create_payment("ORD20240002", "VIP", 3000, "jsapi")
    assert info.value.field == "payer_openid" and wechat_stub.calls == []


async def test_expire_at_is_rfc3339(wechat: WechatPayProvider, wechat_stub: WechatPayStub) -> None:
    expire = datetime(2024, 5, 1, 4, 30, 15, 999, tzinfo=UTC)
    await wechat.create_payment("ORD20240001", "VIP", 3000, "native", expire_at=expire)
    assert wechat_stub.calls[-1].params["time_expire"] == "2024-05-01T12:30:15+08:00"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"method": "page"}, "method"),
        ({"out_trade_no": "short"}, "out_trade_no"),
        ({"out_trade_no": "ORD/../../x"}, "out_trade_no"),
        ({"amount_fen": 30.0}, "amount_fen"),
        ({"amount_fen": -1}, "amount_fen"),
        ({"subject": "x" * 128}, "subject"),
    ],
)
async def test_create_payment_rejects_bad_arguments(
    wechat: WechatPayProvider, wechat_stub: WechatPayStub, kwargs: dict[str, object], field: str
) -> None:
    args: dict[str, object] = {
        "out_trade_no": "ORD20240001",
        "subject": "VIP",
        "amount_fen": 3000,
        "method": "native",
    }
    args.update(kwargs)
    with pytest.raises(ValidationError) as info:
        await wechat.create_payment(**args)  # type: ignore[arg-type]
    assert info.value.field == field and wechat_stub.calls == []


async def test_reused_out_trade_no_is_refused(
    wechat: WechatPayProvider, wechat_stub: WechatPayStub
) -> None:
    await wechat.create_payment("ORD20240001", "VIP", 3000, "native")
    with pytest.raises(ExternalServiceError) as info:
        await wechat.create_payment("ORD20240001", "VIP", 4000, "native")
    assert info.value.details["code"] == "OUT_TRADE_NO_USED"


# -- query / close / refund ------------------------------------------------------------


async def test_query_paid(wechat: WechatPayProvider, wechat_stub: WechatPayStub) -> None:
    await wechat.create_payment("ORD20240001", "VIP", 3000, "native")
    trade = wechat_stub.mark_paid("ORD20240001")
    state = await wechat.query("ORD20240001")
    assert state.status is TradeStatus.SUCCEEDED and state.amount_fen == 3000
    assert state.trade_no == trade["transaction_id"]
    assert state.paid_at is not None and state.paid_at.utcoffset() == timedelta(hours=8)
    path = f"/v3/pay/transactions/out-trade-no/ORD20240001?mchid={wechat_stub.mch_id}"
    assert wechat_stub.calls[-1].path == path


async def test_query_pending_closed_and_missing(
    wechat: WechatPayProvider, wechat_stub: WechatPayStub
) -> None:
    await wechat.create_payment("ORD20240001", "VIP", 3000, "native")
    assert (await wechat.query("ORD20240001")).status is TradeStatus.PENDING
    await wechat.close("ORD20240001")
    assert wechat_stub.trades["ORD20240001"]["trade_state"] == "CLOSED"
    assert (await wechat.query("ORD20240001")).status is TradeStatus.CLOSED
    missing = await wechat.query("NOSUCHORDER")
    assert missing.status is TradeStatus.NOT_FOUND
    await wechat.close("NOSUCHORDER")  # never created: counts as closed


async def test_close_paid_trade_fails(
    wechat: WechatPayProvider, wechat_stub: WechatPayStub
) -> None:
    wechat_stub.add_trade("ORD20240001", 3000)
    wechat_stub.mark_paid("ORD20240001")
    with pytest.raises(ExternalServiceError) as info:
        await wechat.close("ORD20240001")
    assert info.value.details["code"] == "ORDER_PAID"


async def test_forged_reply_is_refused(
    wechat: WechatPayProvider, wechat_stub: WechatPayStub, keys: dict[str, KeyPair]
) -> None:
    wechat_stub.add_trade("ORD20240001", 3000)
    wechat_stub.reply_keys = keys["evil"]
    with pytest.raises(ExternalServiceError) as info:
        await wechat.query("ORD20240001")
    assert info.value.details["code"] == "SIGNATURE_INVALID"


async def test_provider_error_reply(wechat: WechatPayProvider, wechat_stub: WechatPayStub) -> None:
    wechat_stub.overrides[("GET", "query")] = (500, {"code": "SYSTEM_ERROR", "message": "系统错误"})
    with pytest.raises(ExternalServiceError) as info:
        await wechat.query("ORD20240001")
    assert info.value.status_code == 502
    assert info.value.details == {
        "provider": "wechat",
        "code": "SYSTEM_ERROR",
        "message": "系统错误",
    }
    assert isinstance(info.value, PaymentProviderError)
    assert info.value.provider_code == "SYSTEM_ERROR"
    assert info.value.raw == {"code": "SYSTEM_ERROR", "message": "系统错误"}


async def test_wrong_merchant_key_is_refused_by_the_server(
    wechat_stub: WechatPayStub, keys: dict[str, KeyPair]
) -> None:
    provider = WechatPayProvider(
        wechat_stub.config(mch_private_key=SecretStr(keys["evil"].private_pem))
    )
    with pytest.raises(ExternalServiceError) as info:
        await provider.create_payment("ORD20240001", "VIP", 3000, "native")
    assert info.value.details["code"] == "SIGN_ERROR"
    assert wechat_stub.calls[-1].authorized is False


async def test_unreachable_is_network_error(wechat_stub: WechatPayStub, closed_port: int) -> None:
    provider = WechatPayProvider(wechat_stub.config(base_url=f"http://127.0.0.1:{closed_port}"))
    with pytest.raises(NetworkError) as info:
        await provider.query("ORD20240001")
    assert info.value.status_code == 503 and info.value.details["provider"] == "wechat"
    assert isinstance(info.value, PaymentProviderUnavailable) and info.value.retryable


async def test_refund(wechat: WechatPayProvider, wechat_stub: WechatPayStub) -> None:
    wechat_stub.add_trade("ORD20240001", 3000)
    wechat_stub.mark_paid("ORD20240001")
    result = await wechat.refund("ORD20240001", "RF20240001", 1000, 3000, reason="用户申请")
    assert result.status is RefundStatus.SUCCEEDED and result.refund_fen == 1000
    assert result.refund_id and result.out_refund_no == "RF20240001"
    call = wechat_stub.calls[-1]
    assert call.path == "/v3/refund/domestic/refunds" and call.authorized
    assert call.params["amount"] == {"refund": 1000, "total": 3000, "currency": "CNY"}
    assert call.params["reason"] == "用户申请"
    assert (await wechat.query("ORD20240001")).status is TradeStatus.REFUNDED


async def test_refund_processing_and_refused(
    wechat: WechatPayProvider, wechat_stub: WechatPayStub
) -> None:
    wechat_stub.add_trade("ORD20240001", 3000)
    with pytest.raises(ExternalServiceError):  # not paid yet
        await wechat.refund("ORD20240001", "RF20240001", 1000, 3000)
    wechat_stub.mark_paid("ORD20240001")
    wechat_stub.refund_status = "PROCESSING"
    result = await wechat.refund("ORD20240001", "RF20240001", 1000, 3000)
    assert result.status is RefundStatus.PROCESSING
    calls = len(wechat_stub.calls)
    with pytest.raises(ValidationError):
        await wechat.refund("ORD20240001", "RF20240002", 3001, 3000)
    assert len(wechat_stub.calls) == calls


# -- notifications ---------------------------------------------------------------------


async def test_notification_accepted(wechat: WechatPayProvider, wechat_stub: WechatPayStub) -> None:
    wechat_stub.add_trade("ORD20240001", 3000)
    trade = wechat_stub.mark_paid("ORD20240001")
    headers, body = wechat_stub.notification("ORD20240001", event_id="EV-1")
    note = await wechat.verify_notification(headers, body)
    assert note.provider == "wechat" and note.notification_id == "EV-1"
    assert note.event_type == "TRANSACTION.SUCCESS" and note.status is NotifyStatus.SUCCEEDED
    assert note.out_trade_no == "ORD20240001" and note.trade_no == trade["transaction_id"]
    assert note.amount_fen == 3000 and note.currency == "CNY"
    assert note.app_id == wechat_stub.app_id and note.mch_id == wechat_stub.mch_id
    assert note.paid_at == datetime.fromisoformat(trade["success_time"])
    assert note.raw["resource"]["payer"]["openid"]
    note.ensure_amount(3000)


async def test_notification_with_starlette_headers(
    wechat: WechatPayProvider, wechat_stub: WechatPayStub
) -> None:
    wechat_stub.add_trade("ORD20240001", 3000)
    wechat_stub.mark_paid("ORD20240001")
    headers, body = wechat_stub.notification("ORD20240001")
    starlette_headers = Headers(raw=[(k.lower().encode(), v.encode()) for k, v in headers.items()])
    assert (await wechat.verify_notification(starlette_headers, body)).is_paid


async def test_refund_notification(wechat: WechatPayProvider, wechat_stub: WechatPayStub) -> None:
    resource = {
        "mchid": wechat_stub.mch_id,
        "out_trade_no": "ORD20240001",
        "transaction_id": "4200000000202405011234567890",
        "out_refund_no": "RF20240001",
        "refund_id": "50000000382019052709732678859",
        "refund_status": "SUCCESS",
        "success_time": "2024-05-02T08:00:00+08:00",
        "amount": {"total": 3000, "refund": 1000, "payer_total": 3000, "payer_refund": 1000},
    }
    headers, body = wechat_stub.notification("", resource=resource, event_type="REFUND.SUCCESS")
    note = await wechat.verify_notification(headers, body)
    assert note.status is NotifyStatus.REFUNDED and note.refund_fen == 1000
    assert note.out_refund_no == "RF20240001" and note.amount_fen == 3000
    assert note.app_id is None


def _paid(stub: WechatPayStub) -> dict[str, Any]:
    stub.add_trade("ORD20240001", 3000)
    return stub.mark_paid("ORD20240001")


async def test_forged_signature_refused(
    wechat: WechatPayProvider, wechat_stub: WechatPayStub, keys: dict[str, KeyPair]
) -> None:
    _paid(wechat_stub)
    headers, body = wechat_stub.notification("ORD20240001", keys=keys["evil"])
    with pytest.raises(PaymentNotifyInvalid) as info:
        await wechat.verify_notification(headers, body)
    assert info.value.code == "PAYMENT_NOTIFY_INVALID" and info.value.reason == "signature"


async def test_tampered_body_refused(wechat: WechatPayProvider, wechat_stub: WechatPayStub) -> None:
    _paid(wechat_stub)
    headers, body = wechat_stub.notification("ORD20240001")
    event = json.loads(body)
    event["summary"] = "tampered"
    with pytest.raises(PaymentNotifyInvalid) as info:
        await wechat.verify_notification(headers, json.dumps(event).encode())
    assert info.value.reason == "signature"


@pytest.mark.parametrize(("field", "reason"), [("appid", "app_id"), ("mchid", "mch_id")])
async def test_other_app_or_merchant_refused(
    wechat: WechatPayProvider, wechat_stub: WechatPayStub, field: str, reason: str
) -> None:
    resource = {**_paid(wechat_stub), field: "someone-else"}
    headers, body = wechat_stub.notification("ORD20240001", resource=resource)
    with pytest.raises(PaymentNotifyMismatch) as info:
        await wechat.verify_notification(headers, body)
    assert info.value.code == "PAYMENT_NOTIFY_MISMATCH" and info.value.reason == reason


async def test_wrong_amount_for_the_order(
    wechat: WechatPayProvider, wechat_stub: WechatPayStub
) -> None:
    _paid(wechat_stub)
    note = await wechat.verify_notification(*wechat_stub.notification("ORD20240001"))
    with pytest.raises(PaymentNotifyMismatch) as info:
        note.ensure_amount(2999)
    assert info.value.reason == "amount"


@pytest.mark.parametrize("skew", [-3600, -301, 301, 3600])
async def test_stale_timestamp_refused(
    wechat: WechatPayProvider, wechat_stub: WechatPayStub, skew: int
) -> None:
    _paid(wechat_stub)
    headers, body = wechat_stub.notification("ORD20240001", timestamp=int(time.time()) + skew)
    with pytest.raises(PaymentNotifyStale) as info:
        await wechat.verify_notification(headers, body)
    assert info.value.code == "PAYMENT_NOTIFY_STALE" and info.value.status_code == 400


async def test_timestamp_window_follows_config(wechat_stub: WechatPayStub) -> None:
    provider = WechatPayProvider(wechat_stub.config(timestamp_tolerance_seconds=3600))
    _paid(wechat_stub)
    headers, body = wechat_stub.notification("ORD20240001", timestamp=int(time.time()) - 1800)
    assert (await provider.verify_notification(headers, body)).is_paid


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        ("Wechatpay-Signature-Type", None, "signature_type"),
        ("Wechatpay-Signature-Type", "WECHATPAY2-SHA1", "signature_type"),
        ("Wechatpay-Signature", None, "headers"),
        ("Wechatpay-Nonce", None, "headers"),
        ("Wechatpay-Timestamp", "soon", "timestamp"),
    ],
)
async def test_bad_headers_refused(
    wechat: WechatPayProvider,
    wechat_stub: WechatPayStub,
    header: str,
    value: str | None,
    reason: str,
) -> None:
    _paid(wechat_stub)
    headers, body = wechat_stub.notification("ORD20240001")
    if value is None:
        del headers[header]
    else:
        headers[header] = value
    with pytest.raises(PaymentNotifyInvalid) as info:
        await wechat.verify_notification(headers, body)
    assert info.value.reason == reason


async def test_wrong_apiv3_key_refused(
    wechat: WechatPayProvider, wechat_stub: WechatPayStub
) -> None:
    _paid(wechat_stub)
    headers, body = wechat_stub.notification("ORD20240001", apiv3_key="f" * 32)
    with pytest.raises(PaymentNotifyInvalid) as info:
        await wechat.verify_notification(headers, body)
    assert info.value.reason == "decrypt"


@pytest.mark.parametrize("serial", ["5157F09EFDC096DE15EBE81A47057A72", "PUB_KEY_ID_OTHER"])
async def test_unknown_serial_refused_without_network(
    wechat: WechatPayProvider, wechat_stub: WechatPayStub, no_sdk_network: list[str], serial: str
) -> None:
    _paid(wechat_stub)
    calls = len(wechat_stub.calls)
    headers, body = wechat_stub.notification("ORD20240001", serial=serial)
    with pytest.raises(PaymentNotifyInvalid) as info:
        await wechat.verify_notification(headers, body)
    assert info.value.reason == "serial"
    assert no_sdk_network == [] and len(wechat_stub.calls) == calls


async def test_float_amount_refused(wechat: WechatPayProvider, wechat_stub: WechatPayStub) -> None:
    resource = _paid(wechat_stub)
    resource["amount"] = {**resource["amount"], "total": 3000.0}
    headers, body = wechat_stub.notification("ORD20240001", resource=resource)
    with pytest.raises(PaymentNotifyInvalid) as info:
        await wechat.verify_notification(headers, body)
    assert info.value.reason == "format"


async def test_non_json_body_refused(wechat: WechatPayProvider, wechat_stub: WechatPayStub) -> None:
    headers, _ = wechat_stub.notification("", resource={"mchid": wechat_stub.mch_id})
    with pytest.raises(PaymentNotifyInvalid) as info:
        await wechat.verify_notification(headers, b"\xff not json")
    assert info.value.reason == "format"


def test_replies(wechat: WechatPayProvider) -> None:
    ok = wechat.success_reply()
    assert ok.status_code == 204 and ok.body == b""
    bad = wechat.failure_reply(PaymentNotifyStale("wechat", "timestamp"))
    assert bad.status_code == 400
    assert json.loads(bytes(bad.body)) == {"code": "FAIL", "message": "支付通知已过期"}
    plain = wechat.failure_reply("订单处理中")
    assert plain.status_code == 500
    assert json.loads(bytes(plain.body)) == {"code": "FAIL", "message": "订单处理中"}
    assert wechat.failure_reply().status_code == 500


# -- configuration ---------------------------------------------------------------------


def test_construction_is_offline(wechat_stub: WechatPayStub, no_sdk_network: list[str]) -> None:
    WechatPayProvider(wechat_stub.config(base_url="https://api.mch.weixin.qq.com"))
    assert no_sdk_network == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"apiv3_key": SecretStr("short")},
        {"apiv3_key": SecretStr("é" * 32)},
        {"platform_public_key_id": ""},
        {"platform_public_key": ""},
        {"mch_id": ""},
        {"mch_private_key": SecretStr("garbage")},
        {"notify_url": ""},
    ],
)
def test_bad_config_is_config_error(wechat_stub: WechatPayStub, overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        WechatPayProvider(wechat_stub.config(**overrides))

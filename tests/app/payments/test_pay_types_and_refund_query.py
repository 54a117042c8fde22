"""Provider level: the added pay types (their own appids, H5's payer IP, Alipay's
app order string and precreate QR) and refund queries, against the stand-ins."""

from __future__ import annotations

import pytest

from app.payments import (
    AlipayProvider,
    PaymentMethod,
    PaymentProviderError,
    PaymentRefundUnknown,
    RefundStatus,
    WechatPayProvider,
)
from app.sandbox.payments import AlipayStub, WechatPayStub
from luser_common.errors import ValidationError


async def test_miniprogram_and_app_need_their_own_appids(wechat_stub: WechatPayStub) -> None:
    bare = WechatPayProvider(wechat_stub.config(miniprogram_app_id="", mobile_app_id=""))
    assert bare.enabled_methods() == {
        PaymentMethod.NATIVE,
        PaymentMethod.JSAPI,
        PaymentMethod.H5,
    }
    for method in ("miniprogram", "app"):
        with pytest.raises(ValidationError) as info:
            await bare.create_payment("ORDER0001", "VIP", 100, method, payer_openid="o1")
        assert info.value.field == "method"
    assert wechat_stub.calls == []  # refused before any call


async def test_miniprogram_pays_under_its_appid(
    wechat: WechatPayProvider, wechat_stub: WechatPayStub
) -> None:
    launch = await wechat.create_payment(
        "ORDER0002", "VIP", 100, "miniprogram", payer_openid="o-mini"
    )
    call = wechat_stub.calls[-1]
    assert call.path == "/v3/pay/transactions/jsapi" and call.authorized
    assert call.params["appid"] == wechat_stub.miniprogram_app_id
    assert launch.jsapi_params is not None
    assert launch.jsapi_params["appId"] == wechat_stub.miniprogram_app_id
    assert wechat_stub.check_client_params(launch.jsapi_params) == launch.prepay_id
    with pytest.raises(ValidationError):
        await wechat.create_payment("ORDER0003", "VIP", 100, "miniprogram")


async def test_app_params_are_signed_for_the_open_sdk(
    wechat: WechatPayProvider, wechat_stub: WechatPayStub
) -> None:
    launch = await wechat.create_payment("ORDER0004", "VIP", 100, "app")
    params = launch.app_params
    assert params is not None and params["package"] == "Sign=WXPay"
    assert params["appid"] == wechat_stub.mobile_app_id
    assert params["partnerid"] == wechat_stub.mch_id
    assert wechat_stub.check_client_params(params) == launch.prepay_id
    tampered = {**params, "prepayid": "wx-other"}
    with pytest.raises(AssertionError):
        wechat_stub.check_client_params(tampered)


async def test_h5_sends_scene_info_and_needs_an_ip(
    wechat: WechatPayProvider, wechat_stub: WechatPayStub
) -> None:
    launch = await wechat.create_payment(
        "ORDER0005", "VIP", 100, "h5", payer_client_ip="203.0.113.9"
    )
    assert launch.h5_url and launch.h5_url.startswith("https://wx.tenpay.com/")
    assert wechat_stub.calls[-1].params["scene_info"] == {
        "payer_client_ip": "203.0.113.9",
        "h5_info": {"type": "Wap"},
    }
    calls = len(wechat_stub.calls)
    for ip in (None, "", "unknown", "300.1.1.1"):
        with pytest.raises(ValidationError) as info:
            await wechat.create_payment("ORDER0006", "VIP", 100, "h5", payer_client_ip=ip)
        assert info.value.field == "payer_client_ip"
    assert len(wechat_stub.calls) == calls


async def test_alipay_app_order_string_is_signed(
    alipay: AlipayProvider, alipay_stub: AlipayStub
) -> None:
    launch = await alipay.create_payment("ORDER0007", "VIP", 2990, "app")
    assert launch.pay_url is None and launch.order_string
    assert "method=alipay.trade.app.pay" in launch.order_string
    trade = alipay_stub.accept_order_string(launch.order_string)
    assert trade["total_amount"] == "29.90"
    assert alipay_stub.calls == []  # app pay is signed locally; the app SDK talks to Alipay
    forged = launch.order_string.replace("29.90", "0.01")
    with pytest.raises(AssertionError):
        alipay_stub.accept_order_string(forged)


async def test_alipay_precreate_returns_the_qr_code(
    alipay: AlipayProvider, alipay_stub: AlipayStub
) -> None:
    launch = await alipay.create_payment("ORDER0008", "VIP", 2990, "precreate")
    assert launch.qr_code and launch.qr_code.startswith("https://qr.alipay.com/")
    call = alipay_stub.calls[-1]
    assert call.path == "alipay.trade.precreate" and call.authorized
    assert alipay_stub.trades["ORDER0008"]["trade_status"] == "WAIT_BUYER_PAY"
    # The same number with another amount: Alipay refuses, no QR is handed out.
    with pytest.raises(PaymentProviderError) as info:
        await alipay.create_payment("ORDER0008", "VIP", 100, "precreate")
    assert info.value.provider_code == "ACQ.DUP_OUT_ORDER"
    # A reply without qr_code is a bad reply, not a launch without a code.
    alipay_stub.overrides["alipay.trade.precreate"] = {"code": "10000", "msg": "Success"}
    with pytest.raises(PaymentProviderError) as info:
        await alipay.create_payment("ORDER0009", "VIP", 100, "precreate")
    assert info.value.provider_code == "BAD_RESPONSE"


async def test_wechat_refund_query_follows_the_refund(
    wechat: WechatPayProvider, wechat_stub: WechatPayStub
) -> None:
    await wechat.create_payment("ORDER0010", "VIP", 1000, "native")
    wechat_stub.mark_paid("ORDER0010")
    wechat_stub.refund_status = "PROCESSING"
    first = await wechat.refund("ORDER0010", "REFUND0010", 400, 1000)
    assert first.status is RefundStatus.PROCESSING
    state = await wechat.query_refund("ORDER0010", "REFUND0010")
    assert (state.status, state.refund_fen) == (RefundStatus.PROCESSING, 400)
    wechat_stub.finish_refund("REFUND0010")
    state = await wechat.query_refund("ORDER0010", "REFUND0010")
    assert state.status is RefundStatus.SUCCEEDED and state.refund_id == first.refund_id
    assert wechat_stub.calls[-1].authorized
    wechat_stub.finish_refund("REFUND0010", "ABNORMAL")
    assert (await wechat.query_refund("ORDER0010", "REFUND0010")).status is RefundStatus.FAILED
    # Another trade's refund number is not this trade's refund.
    with pytest.raises(PaymentProviderError):
        await wechat.query_refund("ORDER0099", "REFUND0010")
    with pytest.raises(PaymentRefundUnknown) as info:
        await wechat.query_refund("ORDER0010", "REFUND9999")
    assert info.value.status_code == 404 and info.value.code == "PAYMENT_REFUND_UNKNOWN"


async def test_alipay_refund_query(alipay: AlipayProvider, alipay_stub: AlipayStub) -> None:
    alipay_stub.add_trade("ORDER0011", 3000)
    alipay_stub.mark_paid("ORDER0011")
    await alipay.refund("ORDER0011", "REFUND0011", 1000, 3000)
    state = await alipay.query_refund("ORDER0011", "REFUND0011")
    assert (state.status, state.refund_fen) == (RefundStatus.SUCCEEDED, 1000)
    assert alipay_stub.calls[-1].path == "alipay.trade.fastpay.refund.query"
    assert alipay_stub.calls[-1].authorized
    for trade, refund in (("ORDER0011", "REFUND9999"), ("ORDER9999", "REFUND0011")):
        with pytest.raises(PaymentRefundUnknown):
            await alipay.query_refund(trade, refund)

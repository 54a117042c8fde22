"""WeChat Pay API v3 (wechatpayv3), platform *public-key* mode only.

Certificate mode is never used: it downloads certificates at construction time
and whenever it meets an unknown serial. Pitfalls handled here (verified, wechatpayv3 2.0):
- base URL: no constructor argument; set ``_core._gate_way`` in exactly one place;
- notifications: the serial must equal our ``public_key_id`` *before* the SDK is
  called (an unknown serial would make it fetch certificates from the network);
  a missing ``Wechatpay-Signature-Type`` makes the SDK raise instead of return
  False; the SDK does not check the timestamp, so we do (replay window);
  ``callback()`` returns None for a bad signature *or* a wrong APIv3 key, so the
  signature is checked first to tell the two apart.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

import requests
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from starlette.responses import JSONResponse, Response
from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3.utils import rsa_verify

from app.payments.bills import (
    Bill,
    parse_wechat_bill,
    parse_wechat_fundflow,
    unpack_wechat_bill,
)
from app.payments.clock import format_rfc3339, parse_rfc3339
from app.payments.errors import (
    PaymentNotifyInvalid,
    PaymentNotifyMismatch,
    PaymentNotifyStale,
    PaymentRefundUnknown,
    provider_error,
    provider_unavailable,
)
from app.payments.keys import private_key_pem, public_key_pem
from app.payments.models import (
    NotifyStatus,
    PaymentLaunch,
    PaymentMethod,
    PaymentNotification,
    RefundResult,
    RefundStatus,
    TradeState,
    TradeStatus,
)
from app.payments.money import require_fen
from app.payments.providers.base import PaymentProvider, run_blocking
from app.settings import WechatPayConfig
from luser_common.errors import AppError, ConfigError, ValidationError

__all__ = ["SIGNATURE_TYPE", "WechatPayProvider"]

NAME = "wechat"
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
_TRADE_STATE = {
    "SUCCESS": TradeStatus.SUCCEEDED,
    "REFUND": TradeStatus.REFUNDED,
    "NOTPAY": TradeStatus.PENDING,
    "USERPAYING": TradeStatus.PENDING,
    "ACCEPT": TradeStatus.PENDING,
    # PAYERROR: this attempt failed, but the trade may still be paid or closed.
    "PAYERROR": TradeStatus.PENDING,
    "CLOSED": TradeStatus.CLOSED,
    "REVOKED": TradeStatus.CLOSED,
}
_NOTIFY_STATE = {
    "SUCCESS": NotifyStatus.SUCCEEDED,
    "CLOSED": NotifyStatus.CLOSED,
    "REVOKED": NotifyStatus.CLOSED,
    "REFUND": NotifyStatus.REFUNDED,
}
_REFUND_STATUS = {
    "SUCCESS": RefundStatus.SUCCEEDED,
    "PROCESSING": RefundStatus.PROCESSING,
    "ABNORMAL": RefundStatus.FAILED,
    "CLOSED": RefundStatus.FAILED,
}
_PAY_TYPE = {
    PaymentMethod.NATIVE: WeChatPayType.NATIVE,
    PaymentMethod.JSAPI: WeChatPayType.JSAPI,
    PaymentMethod.H5: WeChatPayType.H5,
    PaymentMethod.APP: WeChatPayType.APP,
    PaymentMethod.MINIPROGRAM: WeChatPayType.MINIPROG,
}
_REQUIRED_CONFIG = (
    "mch_id",
    "app_id",
    "mch_private_key",
    "mch_cert_serial_no",
    "apiv3_key",
    "platform_public_key",
    "platform_public_key_id",
    "notify_url",
)


def _config_value(config: WechatPayConfig, name: str) -> str:
    value = getattr(config, name)
    return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)


class WechatPayProvider(PaymentProvider):
    """WeChat Pay v3: NATIVE, JSAPI, H5, APP and mini program; query, close, refund,
    refund query, notifications."""

    name: ClassVar[str] = NAME
    methods: ClassVar[frozenset[PaymentMethod]] = frozenset(
        {
            PaymentMethod.NATIVE,
            PaymentMethod.JSAPI,
            PaymentMethod.H5,
            PaymentMethod.APP,
            PaymentMethod.MINIPROGRAM,
        }
    )
    # WeChat: 6-32 of letters, digits, "_-|*".
    _out_trade_no_pattern = re.compile(r"[0-9A-Za-z_\-|*]{6,32}")

    def __init__(self, config: WechatPayConfig) -> None:
        for name in _REQUIRED_CONFIG:
            if not _config_value(config, name).strip():
                raise ConfigError(
                    f"缺少微信支付配置: payment.wechat.{name}", field=f"payment.wechat.{name}"
                )
        apiv3_key = config.apiv3_key.get_secret_value()
        if len(apiv3_key) != 32 or not apiv3_key.isascii():
            raise ConfigError(
                "微信支付 APIv3 密钥必须是 32 个 ASCII 字符", field="payment.wechat.apiv3_key"
            )
        self.config = config
        platform_pem = public_key_pem(
            config.platform_public_key, "payment.wechat.platform_public_key"
        )
        self._platform_key = load_pem_public_key(platform_pem.encode())
        self._wx = WeChatPay(
            wechatpay_type=WeChatPayType.NATIVE,
            mchid=config.mch_id,
            private_key=private_key_pem(
                config.mch_private_key.get_secret_value(), "payment.wechat.mch_private_key"
            ),
            cert_serial_no=config.mch_cert_serial_no,
            appid=config.app_id,
            apiv3_key=apiv3_key,
            notify_url=config.notify_url,
            timeout=config.timeout_seconds,
            public_key=platform_pem,
            public_key_id=config.platform_public_key_id,
        )
        # The only place that touches the SDK's private base URL.
        self._wx._core._gate_way = config.base_url.rstrip("/")

    # -- paying ---------------------------------------------------------------------

    def enabled_methods(self) -> frozenset[PaymentMethod]:
        # The mini program and the mobile app pay under their own appids.
        off = set()
        if not self.config.miniprogram_app_id:
            off.add(PaymentMethod.MINIPROGRAM)
        if not self.config.mobile_app_id:
            off.add(PaymentMethod.APP)
        return self.methods - off

    def app_ids(self) -> frozenset[str]:
        """Every appid of ours a transaction may carry."""
        ids = (self.config.app_id, self.config.miniprogram_app_id, self.config.mobile_app_id)
        return frozenset(i for i in ids if i)

    async def create_payment(
        self,
        out_trade_no: str,
        subject: str,
        amount_fen: int,
        method: PaymentMethod | str,
        *,
        payer_openid: str | None = None,
        payer_client_ip: str | None = None,
        expire_at: datetime | None = None,
        return_url: str | None = None,
    ) -> PaymentLaunch:
        chosen = self._check_method(method)
        self._check_out_trade_no(out_trade_no)
        self._check_text(subject, "subject", 127)
        kwargs: dict[str, Any] = {
            "description": subject,
            "out_trade_no": out_trade_no,
            "amount": {"total": require_fen(amount_fen), "currency": "CNY"},
            "pay_type": _PAY_TYPE[chosen],
            "appid": self._app_id_for(chosen),
        }
        if expire_at is not None:
            kwargs["time_expire"] = _expire(expire_at)
        if chosen in (PaymentMethod.JSAPI, PaymentMethod.MINIPROGRAM):
            self._check_text(payer_openid or "", "payer_openid", 128)
            kwargs["payer"] = {"openid": payer_openid}
        if chosen is PaymentMethod.H5:
            # WeChat checks the buyer's IP against the one that opens h5_url.
            kwargs["scene_info"] = {
                "payer_client_ip": _client_ip(payer_client_ip),
                "h5_info": {"type": "Wap"},
            }
        status, payload = await self._request(self._wx.pay, **kwargs)
        if status != 200:
            raise _refused(status, payload)
        return self._launch(chosen, out_trade_no, amount_fen, payload)

    def _app_id_for(self, method: PaymentMethod) -> str:
        if method is PaymentMethod.MINIPROGRAM:
            return self.config.miniprogram_app_id
        if method is PaymentMethod.APP:
            return self.config.mobile_app_id
        return self.config.app_id

    def _launch(
        self, method: PaymentMethod, out_trade_no: str, amount_fen: int, payload: Mapping[str, Any]
    ) -> PaymentLaunch:
        launch = PaymentLaunch(NAME, method, out_trade_no, amount_fen)
        if method is PaymentMethod.NATIVE:
            return replace(launch, code_url=_reply_str(payload, "code_url"))
        if method is PaymentMethod.H5:
            return replace(launch, h5_url=_reply_str(payload, "h5_url"))
        prepay_id = _reply_str(payload, "prepay_id")
        if method is PaymentMethod.APP:
            return replace(launch, prepay_id=prepay_id, app_params=self.app_params(prepay_id))
        app_id = self._app_id_for(method)
        return replace(
            launch, prepay_id=prepay_id, jsapi_params=self.jsapi_params(prepay_id, app_id)
        )

    def jsapi_params(self, prepay_id: str, app_id: str | None = None) -> dict[str, str]:
        """Parameters for ``WeixinJSBridge.invoke('getBrandWCPayRequest', ...)`` (JSAPI)
        or ``wx.requestPayment`` (mini program, signed under its own appid)."""
        params = {
            "appId": app_id or self.config.app_id,
            "timeStamp": str(int(time.time())),
            "nonceStr": secrets.token_hex(16),
            "package": f"prepay_id={prepay_id}",
            "signType": "RSA",
        }
        fields = [params["appId"], params["timeStamp"], params["nonceStr"], params["package"]]
        params["paySign"] = str(self._wx.sign(fields))
        return params

    def app_params(self, prepay_id: str) -> dict[str, str]:
        """Parameters for the open SDK's ``PayReq`` (APP payments).

        WeChat's APP signature is RSA-SHA256 over ``appid\ntimestamp\nnoncestr\nprepayid\n``.
        """
        params = {
            "appid": self.config.mobile_app_id,
            "partnerid": self.config.mch_id,
            "prepayid": prepay_id,
            "package": "Sign=WXPay",
            "noncestr": secrets.token_hex(16),
            "timestamp": str(int(time.time())),
        }
        fields = [params["appid"], params["timestamp"], params["noncestr"], prepay_id]
        params["sign"] = str(self._wx.sign(fields))
        return params

    async def query(self, out_trade_no: str) -> TradeState:
        self._check_out_trade_no(out_trade_no)
        status, payload = await self._request(self._wx.query, out_trade_no=out_trade_no)
        if status == 404 and payload.get("code") == "ORDER_NOT_EXIST":
            return TradeState(NAME, out_trade_no, TradeStatus.NOT_FOUND, raw=payload)
        if status != 200:
            raise _refused(status, payload)
        state = _TRADE_STATE.get(str(payload.get("trade_state")))
        if state is None:
            raise provider_error(NAME, "BAD_RESPONSE", f"未知交易状态 {payload.get('trade_state')}")
        amount = payload.get("amount")
        success_time = payload.get("success_time")
        return TradeState(
            NAME,
            out_trade_no,
            state,
            amount_fen=_reply_fen(amount.get("total")) if isinstance(amount, dict) else None,
            trade_no=payload.get("transaction_id"),
            paid_at=_reply_time(success_time) if success_time else None,
            raw=payload,
        )

    async def close(self, out_trade_no: str) -> None:
        self._check_out_trade_no(out_trade_no)
        status, payload = await self._request(self._wx.close, out_trade_no=out_trade_no)
        if status == 404 and payload.get("code") == "ORDER_NOT_EXIST":
            return  # never created at WeChat: nothing can be paid
        if status not in (200, 204):
            raise _refused(status, payload)

    async def refund(
        self,
        out_trade_no: str,
        out_refund_no: str,
        refund_fen: int,
        total_fen: int,
        reason: str = "",
    ) -> RefundResult:
        self._check_out_trade_no(out_trade_no)
        self._check_out_trade_no(out_refund_no, "out_refund_no")
        self._check_refund(refund_fen, total_fen)
        status, payload = await self._request(
            self._wx.refund,
            out_refund_no=out_refund_no,
            out_trade_no=out_trade_no,
            amount={"refund": refund_fen, "total": total_fen, "currency": "CNY"},
            reason=reason or None,
        )
        if status != 200:
            raise _refused(status, payload)
        return _refund_result(out_trade_no, out_refund_no, payload, refund_fen)

    async def query_refund(self, out_trade_no: str, out_refund_no: str) -> RefundResult:
        self._check_out_trade_no(out_trade_no)
        self._check_out_trade_no(out_refund_no, "out_refund_no")
        status, payload = await self._request(self._wx.query_refund, out_refund_no=out_refund_no)
        if status == 404 and payload.get("code") == "RESOURCE_NOT_EXISTS":
            raise PaymentRefundUnknown(NAME, out_refund_no)
        if status != 200:
            raise _refused(status, payload)
        if payload.get("out_trade_no") != out_trade_no:
            raise provider_error(NAME, "BAD_RESPONSE", "退款查询应答的订单号不符")
        return _refund_result(out_trade_no, out_refund_no, payload)

    async def download_bill(self, bill_date: date) -> Bill:
        """The day's trade bill (``bill_type=ALL``: payments and refunds), hash-checked."""
        day = bill_date.isoformat()
        raw, text = await self._bill_file(
            self._wx.trade_bill, bill_date=day, bill_type="ALL", tar_type="GZIP"
        )
        return parse_wechat_bill(text, bill_date, f"tradebill_{day}.csv.gz", raw)

    async def download_fundflow_bill(self, bill_date: date) -> Bill:
        """The day's fund-flow bill of the basic account, hash-checked, kept for audit."""
        day = bill_date.isoformat()
        raw, text = await self._bill_file(
            self._wx.fundflow_bill, bill_date=day, account_type="BASIC", tar_type="GZIP"
        )
        return parse_wechat_fundflow(text, bill_date, f"fundflowbill_{day}.csv.gz", raw)

    async def _bill_file(self, api: Callable[..., Any], **kwargs: Any) -> tuple[bytes, str]:
        """Ask a bill API for its download URL and hash; download, unzip, check."""
        status, payload = await self._request(api, **kwargs)
        if status != 200:
            raise _refused(status, payload)
        url = _reply_str(payload, "download_url")
        try:
            status, raw = await run_blocking(self._wx.download_bill, url)
        except requests.RequestException as exc:
            raise provider_unavailable(NAME, type(exc).__name__) from exc
        if status != 200 or not isinstance(raw, bytes):
            raise provider_error(NAME, f"HTTP_{status}", "账单下载失败")
        text = unpack_wechat_bill(
            raw, str(payload.get("hash_type") or ""), str(payload.get("hash_value") or "")
        )
        return raw, text

    async def _request(self, api: Callable[..., Any], **kwargs: Any) -> tuple[int, dict[str, Any]]:
        try:
            status, body = await run_blocking(api, **kwargs)
        except requests.RequestException as exc:
            raise provider_unavailable(NAME, type(exc).__name__) from exc
        except Exception as exc:  # the SDK raises bare Exception for everything else
            if "verify the signature" in str(exc):
                raise provider_error(NAME, "SIGNATURE_INVALID", "应答签名验证失败") from exc
            raise provider_error(NAME, "SDK_ERROR", "微信支付请求失败") from exc
        return int(status), _parse_reply(status, body)

    # -- notifications --------------------------------------------------------------

    async def verify_notification(
        self, headers: Mapping[str, str], raw_body: bytes
    ) -> PaymentNotification:
        lower = {str(k).lower(): str(v) for k, v in headers.items()}
        timestamp = self._check_signature(lower, raw_body)
        if abs(time.time() - timestamp) > self.config.timestamp_tolerance_seconds:
            raise PaymentNotifyStale(NAME, "timestamp")
        try:
            event = self._wx.callback(lower, raw_body.decode("utf-8"))
        except Exception as exc:  # unsupported algorithm, malformed JSON
            raise PaymentNotifyInvalid(NAME, "format", "微信支付通知格式错误") from exc
        if not isinstance(event, dict) or not isinstance(event.get("resource"), dict):
            # The signature held, so this is a wrong APIv3 key or a plain resource.
            raise PaymentNotifyInvalid(NAME, "decrypt", "微信支付通知解密失败")
        resource = event["resource"]
        self._check_ours(resource)
        return _notification(event, resource)

    def _check_signature(self, headers: Mapping[str, str], raw_body: bytes) -> int:
        """Verify headers and signature without the SDK; return the timestamp."""
        if headers.get("wechatpay-signature-type") != SIGNATURE_TYPE:
            raise PaymentNotifyInvalid(NAME, "signature_type", "微信支付通知签名类型不支持")
        names = ("signature", "timestamp", "nonce", "serial")
        signature, timestamp, nonce, serial = (headers.get(f"wechatpay-{n}", "") for n in names)
        if not (signature and timestamp and nonce and serial):
            raise PaymentNotifyInvalid(NAME, "headers", "微信支付通知缺少签名头")
        if serial != self.config.platform_public_key_id:
            raise PaymentNotifyInvalid(NAME, "serial", "微信支付通知的平台公钥 ID 未知")
        if not (timestamp.isascii() and timestamp.isdigit()):
            raise PaymentNotifyInvalid(NAME, "timestamp", "微信支付通知时间戳无效")
        try:
            body = raw_body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PaymentNotifyInvalid(NAME, "format", "微信支付通知编码错误") from exc
        if not rsa_verify(timestamp, nonce, body, signature, self._platform_key):
            raise PaymentNotifyInvalid(NAME, "signature", "微信支付通知签名无效")
        return int(timestamp)

    def _check_ours(self, resource: Mapping[str, Any]) -> None:
        if resource.get("mchid") != self.config.mch_id:
            raise PaymentNotifyMismatch(NAME, "mch_id", "微信支付通知的商户号不是本商户")
        # Refund resources carry no appid; transaction resources always do (the
        # mini program's and the mobile app's trades carry their own appids).
        if "appid" in resource and resource.get("appid") not in self.app_ids():
            raise PaymentNotifyMismatch(NAME, "app_id", "微信支付通知的 appid 不是本应用")

    def success_reply(self) -> Response:
        return Response(status_code=204)

    def failure_reply(self, error: Exception | str | None = None) -> Response:
        status, message = 500, "处理失败"
        if isinstance(error, AppError):
            status = error.status_code if error.status_code >= 400 else 500
            message = error.message
        elif isinstance(error, str) and error:
            message = error
        return JSONResponse({"code": "FAIL", "message": message}, status_code=status)


# -- helpers ---------------------------------------------------------------------------


def _expire(moment: datetime) -> str:
    try:
        return format_rfc3339(moment)
    except ValueError as exc:
        raise ValidationError("expire_at 必须带时区", field="expire_at") from exc


def _client_ip(value: str | None) -> str:
    try:
        return str(ipaddress.ip_address((value or "").strip()))
    except ValueError:
        raise ValidationError("H5 支付需要用户的 IP 地址", field="payer_client_ip") from None


def _parse_reply(status: int, body: Any) -> dict[str, Any]:
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not body:
        return {}
    try:
        # parse_float: a float must never carry an amount, even by accident.
        payload = json.loads(body, parse_float=Decimal)
    except ValueError as exc:
        if 200 <= status < 300:
            raise provider_error(NAME, "BAD_RESPONSE", "应答无法解析") from exc
        return {}
    return payload if isinstance(payload, dict) else {}


def _refused(status: int, payload: Mapping[str, Any]) -> Exception:
    code = str(payload.get("code") or f"HTTP_{status}")
    return provider_error(NAME, code, str(payload.get("message") or ""), raw=dict(payload))


def _refund_result(
    out_trade_no: str, out_refund_no: str, payload: Mapping[str, Any], refund_fen: int | None = None
) -> RefundResult:
    refund_status = _REFUND_STATUS.get(str(payload.get("status")))
    if refund_status is None:
        raise provider_error(NAME, "BAD_RESPONSE", f"未知退款状态 {payload.get('status')}")
    if refund_fen is None:
        amount = payload.get("amount")
        refund_fen = _reply_fen(amount.get("refund") if isinstance(amount, dict) else None)
    return RefundResult(
        NAME,
        out_trade_no,
        out_refund_no,
        refund_fen,
        refund_status,
        refund_id=payload.get("refund_id"),
        raw=dict(payload),
    )


def _reply_str(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise provider_error(NAME, "BAD_RESPONSE", f"应答缺少 {key}")
    return value


def _reply_fen(value: Any) -> int:
    try:
        return require_fen(value, allow_zero=True)
    except ValidationError as exc:
        raise provider_error(NAME, "BAD_RESPONSE", "应答金额格式错误") from exc


def _reply_time(value: Any) -> datetime:
    try:
        return parse_rfc3339(str(value))
    except ValueError as exc:
        raise provider_error(NAME, "BAD_RESPONSE", "应答时间格式错误") from exc


def _notify_fen(value: Any, key: str) -> int:
    try:
        return require_fen(value, key, allow_zero=True)
    except ValidationError as exc:
        raise PaymentNotifyInvalid(NAME, "format", f"微信支付通知 {key} 格式错误") from exc


def _notification(event: Mapping[str, Any], resource: Mapping[str, Any]) -> PaymentNotification:
    event_type = str(event.get("event_type") or "")
    is_refund = event_type.startswith("REFUND.")
    amount = resource.get("amount")
    if not isinstance(amount, dict):
        raise PaymentNotifyInvalid(NAME, "format", "微信支付通知缺少金额")
    if is_refund:
        done = resource.get("refund_status") == "SUCCESS"
        status = NotifyStatus.REFUNDED if done else NotifyStatus.OTHER
    else:
        status = _NOTIFY_STATE.get(str(resource.get("trade_state")), NotifyStatus.OTHER)
    event_id, out_trade_no = event.get("id"), resource.get("out_trade_no")
    if not event_id or not out_trade_no:
        raise PaymentNotifyInvalid(NAME, "format", "微信支付通知缺少 id 或 out_trade_no")
    success_time = resource.get("success_time")
    try:
        paid_at = parse_rfc3339(str(success_time)) if success_time else None
    except ValueError as exc:
        raise PaymentNotifyInvalid(NAME, "format", "微信支付通知时间格式错误") from exc
    return PaymentNotification(
        provider=NAME,
        notification_id=str(event_id),
        event_type=event_type,
        out_trade_no=str(out_trade_no),
        trade_no=resource.get("transaction_id"),
        amount_fen=_notify_fen(amount.get("total"), "amount.total"),
        currency=str(amount.get("currency") or "CNY"),
        status=status,
        app_id=resource.get("appid"),
        mch_id=resource.get("mchid"),
        paid_at=paid_at,
        refund_fen=_notify_fen(amount.get("refund"), "amount.refund") if is_refund else None,
        out_refund_no=resource.get("out_refund_no") if is_refund else None,
        raw=dict(event),
    )

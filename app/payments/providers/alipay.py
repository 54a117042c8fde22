"""Alipay (python-alipay-sdk, RSA2, public-key mode).

Pitfalls handled here (each verified against python-alipay-sdk 3.4):
- the SDK has no gateway argument; :class:`_AliPayClient` sets the private
  ``_gateway`` in exactly one place;
- the SDK stamps requests with ``datetime.now()`` (naive, server-local); Alipay
  reads it as Beijing time, so :class:`_AliPayClient` re-stamps every request in
  Beijing time and the service works whatever the host's ``TZ`` is;
- ``verify()`` needs a dict of str with ``sign`` popped; it mutates its input;
- business failures come back as dicts with ``code != "10000"``.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date, datetime
from typing import Any, ClassVar

from alipay import AliPay
from alipay.exceptions import AliPayException, AliPayValidationError
from alipay.utils import AliPayConfig as _SdkConfig
from starlette.responses import PlainTextResponse, Response

from app.payments.bills import Bill, parse_alipay_bill
from app.payments.clock import beijing_now_str, format_beijing, parse_beijing
from app.payments.errors import (
    PaymentNotifyInvalid,
    PaymentNotifyMismatch,
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
from app.payments.money import fen_to_yuan_str, require_fen, yuan_str_to_fen
from app.payments.providers.base import PaymentProvider, run_blocking
from app.settings import AlipayConfig
from luser_common.errors import ConfigError, ValidationError

__all__ = ["AlipayProvider"]

NAME = "alipay"
_OK = "10000"
_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"
_BILL_API = "alipay.data.dataservice.bill.downloadurl.query"
_PAID = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})
_QUERY_STATUS = {
    "WAIT_BUYER_PAY": TradeStatus.PENDING,
    "TRADE_SUCCESS": TradeStatus.SUCCEEDED,
    "TRADE_FINISHED": TradeStatus.SUCCEEDED,
    "TRADE_CLOSED": TradeStatus.CLOSED,
}


class _AliPayClient(AliPay):
    """AliPay with an explicit gateway and Beijing-time request timestamps."""

    def __init__(self, *, gateway: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if gateway:
            # The only place that touches the SDK's private attribute.
            self._gateway = gateway

    @property
    def gateway(self) -> str:
        return str(self._gateway)

    def build_body(self, method: str, biz_content: Any = None, **kwargs: Any) -> dict[str, Any]:
        data: dict[str, Any] = super().build_body(method, biz_content, **kwargs)
        data["timestamp"] = beijing_now_str()
        return data


class AlipayProvider(PaymentProvider):
    """Alipay page / wap / app / precreate (QR) pay, query, close, refund, refund query
    and async notifications."""

    name: ClassVar[str] = NAME
    methods: ClassVar[frozenset[PaymentMethod]] = frozenset(
        {PaymentMethod.PAGE, PaymentMethod.WAP, PaymentMethod.APP, PaymentMethod.PRECREATE}
    )
    # Alipay: at most 64 letters, digits and underscores.
    _out_trade_no_pattern = re.compile(r"[0-9A-Za-z_]{1,64}")

    def __init__(self, config: AlipayConfig) -> None:
        if not config.app_id:
            field = "payment.alipay.app_id"
            raise ConfigError(f"缺少支付宝配置: {field}", field=field)
        self.config = config
        self._client = _AliPayClient(
            gateway=config.gateway_url or None,
            appid=config.app_id,
            app_notify_url=config.notify_url or None,
            app_private_key_string=private_key_pem(
                config.app_private_key.get_secret_value(), "payment.alipay.app_private_key"
            ),
            alipay_public_key_string=public_key_pem(
                config.alipay_public_key, "payment.alipay.alipay_public_key"
            ),
            sign_type="RSA2",
            debug=config.sandbox,
            config=_SdkConfig(timeout=config.timeout_seconds),
        )

    @property
    def gateway(self) -> str:
        return self._client.gateway

    # -- paying ---------------------------------------------------------------------

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
        self._check_text(subject, "subject", 256)
        total = fen_to_yuan_str(require_fen(amount_fen))
        extra: dict[str, str] = {}
        if expire_at is not None:
            extra["time_expire"] = _expire(expire_at)
        launch = PaymentLaunch(NAME, chosen, out_trade_no, amount_fen)
        notify_url = self.config.notify_url or None
        if chosen is PaymentMethod.PRECREATE:
            # The only server call among the four: Alipay creates the trade now.
            resp = await self._call(
                self._client.api_alipay_trade_precreate,
                subject=subject,
                out_trade_no=out_trade_no,
                total_amount=total,
                notify_url=notify_url,
                **extra,
            )
            _ensure_ok(resp)
            return replace(launch, qr_code=_reply_qr(resp))
        if chosen is PaymentMethod.APP:
            order_string = await run_blocking(
                self._client.api_alipay_trade_app_pay,
                subject=subject,
                out_trade_no=out_trade_no,
                total_amount=total,
                notify_url=notify_url,
                **extra,
            )
            return replace(launch, order_string=order_string)
        api = (
            self._client.api_alipay_trade_page_pay
            if chosen is PaymentMethod.PAGE
            else self._client.api_alipay_trade_wap_pay
        )
        query_string = await run_blocking(
            api,
            subject=subject,
            out_trade_no=out_trade_no,
            total_amount=total,
            return_url=return_url or self.config.return_url or None,
            notify_url=notify_url,
            **extra,
        )
        return replace(launch, pay_url=f"{self._client.gateway}?{query_string}")

    async def query(self, out_trade_no: str) -> TradeState:
        self._check_out_trade_no(out_trade_no)
        resp = await self._call(self._client.api_alipay_trade_query, out_trade_no=out_trade_no)
        if resp.get("sub_code") == _NOT_EXIST:
            return TradeState(NAME, out_trade_no, TradeStatus.NOT_FOUND, raw=resp)
        _ensure_ok(resp)
        status = _QUERY_STATUS.get(str(resp.get("trade_status")))
        if status is None:
            raise provider_error(NAME, "BAD_RESPONSE", f"未知交易状态 {resp.get('trade_status')}")
        paid_at = resp.get("send_pay_date")
        return TradeState(
            NAME,
            out_trade_no,
            status,
            amount_fen=_reply_amount(resp.get("total_amount")),
            trade_no=resp.get("trade_no"),
            paid_at=_reply_time(paid_at) if paid_at else None,
            raw=resp,
        )

    async def close(self, out_trade_no: str) -> None:
        self._check_out_trade_no(out_trade_no)
        resp = await self._call(self._client.api_alipay_trade_close, out_trade_no=out_trade_no)
        # The buyer never opened the cashier: Alipay has nothing to close.
        if resp.get("sub_code") == _NOT_EXIST:
            return
        _ensure_ok(resp)

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
        extra = {"refund_reason": reason} if reason else {}
        resp = await self._call(
            self._client.api_alipay_trade_refund,
            refund_amount=fen_to_yuan_str(refund_fen),
            out_trade_no=out_trade_no,
            out_request_no=out_refund_no,
            **extra,
        )
        _ensure_ok(resp)
        # A "10000" refund reply is final; fund_change="N" means an idempotent repeat.
        return RefundResult(
            NAME,
            out_trade_no,
            out_refund_no,
            refund_fen,
            RefundStatus.SUCCEEDED,
            refund_id=resp.get("trade_no"),
            raw=resp,
        )

    async def query_refund(self, out_trade_no: str, out_refund_no: str) -> RefundResult:
        self._check_out_trade_no(out_trade_no)
        self._check_out_trade_no(out_refund_no, "out_refund_no")
        resp = await self._call(
            self._client.api_alipay_trade_fastpay_refund_query,
            out_request_no=out_refund_no,
            out_trade_no=out_trade_no,
        )
        if resp.get("sub_code") == _NOT_EXIST:
            raise PaymentRefundUnknown(NAME, out_refund_no)
        _ensure_ok(resp)
        # An unknown request number still answers "10000", with no refund in it.
        if resp.get("out_request_no") != out_refund_no or not resp.get("refund_amount"):
            raise PaymentRefundUnknown(NAME, out_refund_no)
        # refund_status is REFUND_SUCCESS once done; absent means not (yet) refunded.
        done = resp.get("refund_status") == "REFUND_SUCCESS"
        return RefundResult(
            NAME,
            out_trade_no,
            out_refund_no,
            _reply_amount(resp.get("refund_amount")) or 0,
            RefundStatus.SUCCEEDED if done else RefundStatus.PROCESSING,
            refund_id=resp.get("trade_no"),
            raw=resp,
        )

    async def download_bill(self, bill_date: date) -> Bill:
        """The day's trade bill (payments and refunds): ask for its URL, fetch the zip."""
        resp = await self._call(
            self._client.server_api,
            api_name=_BILL_API,
            biz_content={"bill_type": "trade", "bill_date": bill_date.isoformat()},
        )
        _ensure_ok(resp)
        url = resp.get("bill_download_url")
        if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise provider_error(NAME, "BAD_RESPONSE", "应答缺少 bill_download_url")
        try:
            raw = await run_blocking(_fetch, url, self.config.timeout_seconds)
        except urllib.error.HTTPError as exc:
            raise provider_error(NAME, f"HTTP_{exc.code}", "账单下载失败") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise provider_unavailable(NAME, type(exc).__name__) from exc
        return parse_alipay_bill(raw, bill_date)

    async def _call(self, api: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
        try:
            resp = await run_blocking(api, **kwargs)
        except AliPayValidationError as exc:
            raise provider_error(NAME, "SIGNATURE_INVALID", "应答签名验证失败") from exc
        except AliPayException as exc:
            raise _sdk_error(exc) from exc
        except urllib.error.HTTPError as exc:
            raise provider_error(NAME, f"HTTP_{exc.code}") from exc
        except (OSError, http.client.HTTPException) as exc:  # URLError, refused, timeout
            raise provider_unavailable(NAME, type(exc).__name__) from exc
        except (ValueError, TypeError, AttributeError, KeyError) as exc:  # unparsable reply
            raise provider_error(NAME, "BAD_RESPONSE", "应答无法解析") from exc
        if not isinstance(resp, dict):
            raise provider_error(NAME, "BAD_RESPONSE", "应答无法解析")
        return resp

    # -- notifications --------------------------------------------------------------

    async def verify_notification(
        self, headers: Mapping[str, str], raw_body: bytes
    ) -> PaymentNotification:
        data = _parse_form(raw_body)
        raw = dict(data)
        signature = data.pop("sign", "")
        if not signature:
            raise PaymentNotifyInvalid(NAME, "signature", "支付宝通知缺少签名")
        if data.get("sign_type", "RSA2") != "RSA2":
            raise PaymentNotifyInvalid(NAME, "sign_type", "支付宝通知签名类型不支持")
        try:
            # verify() pops sign_type and mutates: hand it a copy.
            valid = self._client.verify(dict(data), signature)
        except (AliPayException, ValueError, TypeError) as exc:
            raise PaymentNotifyInvalid(NAME, "signature", "支付宝通知签名无效") from exc
        if not valid:
            raise PaymentNotifyInvalid(NAME, "signature", "支付宝通知签名无效")
        self._check_ours(data)
        return _notification(data, raw)

    def _check_ours(self, data: Mapping[str, str]) -> None:
        if data.get("app_id") != self.config.app_id:
            raise PaymentNotifyMismatch(NAME, "app_id", "支付宝通知的 app_id 不是本应用")
        if self.config.seller_id and data.get("seller_id") != self.config.seller_id:
            raise PaymentNotifyMismatch(NAME, "seller_id", "支付宝通知的 seller_id 不是本商户")

    def success_reply(self) -> Response:
        return PlainTextResponse("success")

    def failure_reply(self, error: Exception | str | None = None) -> Response:
        # Alipay only reads the body: anything but "success" means "send again".
        return PlainTextResponse("failure")


# -- helpers ---------------------------------------------------------------------------


def _fetch(url: str, timeout: float) -> bytes:  # float-ok: seconds, not money
    # The bill URL is Alipay's file host (signed, short-lived); a plain GET.
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        body: bytes = reply.read()
        return body


def _expire(moment: datetime) -> str:
    try:
        return format_beijing(moment)
    except ValueError as exc:
        raise ValidationError("expire_at 必须带时区", field="expire_at") from exc


def _ensure_ok(resp: Mapping[str, Any]) -> None:
    if resp.get("code") != _OK:
        code = str(resp.get("sub_code") or resp.get("code") or "UNKNOWN")
        message = str(resp.get("sub_msg") or resp.get("msg") or "")
        raise provider_error(NAME, code, message, raw=dict(resp))


def _sdk_error(exc: AliPayException) -> Exception:
    """AliPayException keeps code and raw reply in name-mangled attributes."""
    code = str(getattr(exc, "_AliPayException__code", None) or "UNKNOWN")
    raw = getattr(exc, "_AliPayException__message", "")
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        parsed = {}
    inner = (
        next((v for v in parsed.values() if isinstance(v, dict)), {})
        if isinstance(parsed, dict)
        else {}
    )
    sub_code = inner.get("sub_code")
    return provider_error(NAME, str(sub_code or code), str(inner.get("sub_msg") or ""))


def _reply_qr(resp: Mapping[str, Any]) -> str:
    value = resp.get("qr_code")
    if not isinstance(value, str) or not value:
        raise provider_error(NAME, "BAD_RESPONSE", "应答缺少 qr_code")
    return value


def _reply_amount(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return yuan_str_to_fen(value)
    except ValidationError as exc:
        raise provider_error(NAME, "BAD_RESPONSE", "应答金额格式错误") from exc


def _reply_time(value: Any) -> datetime:
    try:
        return parse_beijing(str(value))
    except ValueError as exc:
        raise provider_error(NAME, "BAD_RESPONSE", "应答时间格式错误") from exc


def _parse_form(raw_body: bytes) -> dict[str, str]:
    """x-www-form-urlencoded -> dict of str; refuses bad UTF-8 and duplicate keys."""
    try:
        text = raw_body.decode("utf-8")
        # keep_blank_values: Alipay's own verifier signs empty values too.
        pairs = urllib.parse.parse_qsl(
            text, keep_blank_values=True, strict_parsing=True, errors="strict"
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise PaymentNotifyInvalid(NAME, "format", "支付宝通知格式错误") from exc
    data = dict(pairs)
    if len(data) != len(pairs):
        raise PaymentNotifyInvalid(NAME, "format", "支付宝通知含重复参数")
    return data


def _required(data: Mapping[str, str], key: str) -> str:
    value = data.get(key)
    if not value:
        raise PaymentNotifyInvalid(NAME, "format", f"支付宝通知缺少 {key}")
    return value


def _notify_status(data: Mapping[str, str]) -> NotifyStatus:
    # Refund notifications carry out_biz_no / gmt_refund; a full refund also
    # closes the trade, a partial one leaves it TRADE_SUCCESS.
    if data.get("out_biz_no") or data.get("gmt_refund"):
        return NotifyStatus.REFUNDED
    trade_status = data.get("trade_status")
    if trade_status in _PAID:
        return NotifyStatus.SUCCEEDED
    if trade_status == "TRADE_CLOSED":
        return NotifyStatus.CLOSED
    return NotifyStatus.OTHER


def _notify_amount(value: str, key: str) -> int:
    try:
        return yuan_str_to_fen(value, key)
    except ValidationError as exc:
        raise PaymentNotifyInvalid(NAME, "format", f"支付宝通知 {key} 格式错误") from exc


def _notification(data: Mapping[str, str], raw: dict[str, str]) -> PaymentNotification:
    status = _notify_status(data)
    refund_fee = data.get("refund_fee")
    gmt_payment = data.get("gmt_payment")
    try:
        paid_at = parse_beijing(gmt_payment) if gmt_payment else None
    except ValueError as exc:
        raise PaymentNotifyInvalid(NAME, "format", "支付宝通知时间格式错误") from exc
    return PaymentNotification(
        provider=NAME,
        notification_id=_required(data, "notify_id"),
        event_type=data.get("notify_type") or "trade_status_sync",
        out_trade_no=_required(data, "out_trade_no"),
        trade_no=data.get("trade_no") or None,
        amount_fen=_notify_amount(_required(data, "total_amount"), "total_amount"),
        currency="CNY",
        status=status,
        app_id=data.get("app_id"),
        mch_id=data.get("seller_id") or None,
        paid_at=paid_at,
        refund_fen=_notify_amount(refund_fee, "refund_fee") if refund_fee else None,
        out_refund_no=data.get("out_biz_no") or None,
        raw=raw,
    )

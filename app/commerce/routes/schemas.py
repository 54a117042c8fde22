"""Request and response models shared by the commerce routes.

Amounts are strict ints in fen: a JSON ``30.0`` is refused, never rounded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StrictInt

from app.payments.factory import PaymentProviderName
from app.web.types import Input, Output, QueryInput, Text

Fen = Annotated[StrictInt, Field(ge=1, le=10**12, description="金额, 单位: 分")]
OrderStatusName = Literal["pending", "paid", "refunded", "closed", "expired"]
ProviderName = PaymentProviderName  # checked against app.payments.factory.PAYMENT_PROVIDERS
# The pay types (app.payments.PaymentMethod); which provider offers which: docs/payments.md.
MethodName = Literal["page", "wap", "native", "jsapi", "h5", "app", "miniprogram", "precreate"]


class PageQuery(QueryInput):
    page: int = Field(1, ge=1, le=10_000)
    size: int = Field(20, ge=1, le=100)


class PlanOut(Output):
    id: int
    name: str
    description: str
    level: int
    duration_days: int
    price_fen: int
    active: bool
    sort_order: int


class PlanPage(Output):
    items: list[PlanOut]
    page_number: int
    page_size: int
    total_row: int
    total_page: int


class OrderOut(Output):
    id: int
    order_no: str
    user_id: int
    kind: Literal["plan", "topup"]
    plan_id: int | None
    plan_name: str
    plan_level: int
    duration_days: int
    amount_fen: int
    currency: str
    status: OrderStatusName
    refunded_fen: int
    expires_at: datetime
    paid_at: datetime | None
    closed_at: datetime | None
    refunded_at: datetime | None
    created_at: datetime


class OrderPage(Output):
    items: list[OrderOut]
    page_number: int
    page_size: int
    total_row: int
    total_page: int


class AttemptOut(Output):
    id: int
    provider: str
    method: str
    out_trade_no: str
    amount_fen: int
    status: str
    trade_no: str | None
    flagged: bool
    flag_reason: str | None
    paid_at: datetime | None
    created_at: datetime


class RefundOut(Output):
    id: int
    order_id: int
    kind: str
    out_refund_no: str
    amount_fen: int
    reason: str
    status: str
    error: str | None
    created_at: datetime


class PaymentOut(Output):
    """How to pay: ``pay_url`` (Alipay page/wap), ``order_string`` (Alipay app),
    ``qr_code`` (Alipay precreate QR), ``code_url`` (WeChat native QR), ``h5_url``
    (WeChat H5), ``jsapi_params`` (WeChat JSAPI / mini program) or ``app_params``
    (WeChat APP)."""

    provider: str
    method: str
    out_trade_no: str
    amount_fen: int
    pay_url: str | None = None
    code_url: str | None = None
    prepay_id: str | None = None
    jsapi_params: dict[str, str] | None = None
    h5_url: str | None = None
    app_params: dict[str, str] | None = None
    order_string: str | None = None
    qr_code: str | None = None


class CheckoutOut(Output):
    order: OrderOut
    payment: PaymentOut


class PayIn(Input):
    provider: ProviderName
    method: MethodName
    payer_openid: Text | None = Field(
        None, max_length=128, description="JSAPI / 小程序: 用户在该 appid 下的 openid"
    )
    return_url: Text | None = Field(None, max_length=512, description="支付宝: 支付后跳转地址")

    def pay_options(self) -> dict[str, Any]:
        return {"payer_openid": self.payer_openid, "return_url": self.return_url}


class OrderIn(PayIn):
    plan_id: Annotated[StrictInt, Field(ge=1, le=2**63 - 1)]


class TopupIn(PayIn):
    amount_fen: Fen = Field(description="充值金额, 单位: 分 (上限见 payment.topup_max_fen)")

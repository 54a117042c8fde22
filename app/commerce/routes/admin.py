"""Admin: orders by status, refunds, revenue per day, active subscribers, reconciliation."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import Field

from app.commerce.queries import active_subscribers, daily_revenue
from app.commerce.routes.schemas import (
    AttemptOut,
    Fen,
    OrderOut,
    OrderPage,
    OrderStatusName,
    PageQuery,
    RefundOut,
)
from app.web.operation import Call, Operation, operation
from app.web.types import Id, Input, Output, Text


class AdminOrdersQuery(PageQuery):
    status: OrderStatusName | None = None
    user_id: Id | None = None
    flagged: bool = Field(False, description="只看有异常支付 (关单后支付、金额不符) 的订单")


class AdminOrderOut(OrderOut):
    attempts: list[AttemptOut]
    refunds: list[RefundOut]


class RefundIn(Input):
    amount_fen: Fen | None = Field(None, description="默认退还剩余全部金额")
    reason: Text = Field("", max_length=80)


class RevenueQuery(PageQuery):
    since: date | None = Field(None, alias="from", description="北京时间日期, 含")
    until: date | None = Field(None, alias="to", description="北京时间日期, 含")


class RevenueDayOut(Output):
    day: date
    orders: int
    gross_fen: int
    refunded_fen: int
    net_fen: int


class RevenuePage(Output):
    items: list[RevenueDayOut]
    page_number: int
    page_size: int
    total_row: int
    total_page: int


class SubscriberQuery(PageQuery):
    level: int | None = Field(None, ge=1, le=100, description="只看该等级及以上")


class SubscriberOut(Output):
    user_id: int
    email: str | None
    phone: str | None
    nickname: str | None
    level: int
    current_period_ends_at: datetime
    access_ends_at: datetime


class SubscriberPage(Output):
    items: list[SubscriberOut]
    page_number: int
    page_size: int
    total_row: int
    total_page: int


class ReconcileOut(Output):
    checked: int
    paid: int
    flagged: int
    closed: int
    expired: int
    refunds_retried: int
    errors: int


@operation(
    "GET",
    "/api/admin/orders",
    summary="Orders by status, newest first",
    tag="admin",
    query=AdminOrdersQuery,
    response=OrderPage,
    access="admin",
)
async def admin_orders(call: Call) -> OrderPage:
    q: AdminOrdersQuery = call.query
    page = await call.services.commerce.orders.page(
        q.page, q.size, user_id=q.user_id, status=q.status, flagged=q.flagged
    )
    return OrderPage.model_validate(page.to_dict(OrderOut.model_validate))


@operation(
    "GET",
    "/api/admin/orders/{id}",
    summary="An order with its attempts and refunds",
    tag="admin",
    response=AdminOrderOut,
    access="admin",
    errors=(404,),
)
async def admin_order(call: Call) -> AdminOrderOut:
    services = call.services.commerce
    order = await services.orders.get(call.path_id())
    attempts = [AttemptOut.model_validate(a) for a in await services.orders.attempts(order.id)]
    refunds = [RefundOut.model_validate(r) for r in await services.refunds.for_order(order.id)]
    return AdminOrderOut.model_validate(
        {**order.to_dict(), "attempts": attempts, "refunds": refunds}
    )


@operation(
    "POST",
    "/api/admin/orders/{id}/refund",
    summary="Refund a paid order (in part or in full); shortens the subscription",
    tag="admin",
    body=RefundIn,
    response=RefundOut,
    access="admin",
    errors=(404, 409, 422, 502, 503),
)
async def refund_order(call: Call) -> RefundOut:
    body: RefundIn = call.body
    refund = await call.services.commerce.refunds.refund_order(
        call.path_id(), body.amount_fen, body.reason, call.current_user.id
    )
    return RefundOut.model_validate(refund)


@operation(
    "POST",
    "/api/admin/refunds/{id}/query",
    summary="Ask the provider how a refund stands and settle it (processing -> succeeded)",
    tag="admin",
    response=RefundOut,
    access="admin",
    errors=(404, 502, 503),
)
async def query_refund(call: Call) -> RefundOut:
    refund = await call.services.commerce.refunds.query(call.path_id())
    return RefundOut.model_validate(refund)


@operation(
    "GET",
    "/api/admin/revenue/daily",
    summary="Revenue per Beijing day of payment (gross, refunded, net fen)",
    tag="admin",
    query=RevenueQuery,
    response=RevenuePage,
    access="admin",
)
async def revenue_daily(call: Call) -> RevenuePage:
    q: RevenueQuery = call.query
    page = await daily_revenue(q.page, q.size, q.since, q.until)
    return RevenuePage.model_validate(page.to_dict(lambda r: RevenueDayOut.model_validate(dict(r))))


@operation(
    "GET",
    "/api/admin/subscribers",
    summary="Users with an active subscription now",
    tag="admin",
    query=SubscriberQuery,
    response=SubscriberPage,
    access="admin",
)
async def subscribers(call: Call) -> SubscriberPage:
    q: SubscriberQuery = call.query
    page = await active_subscribers(q.page, q.size, q.level)
    return SubscriberPage.model_validate(
        page.to_dict(lambda r: SubscriberOut.model_validate(dict(r)))
    )


@operation(
    "POST",
    "/api/admin/payments/reconcile",
    summary="Run one reconciliation pass now",
    tag="admin",
    response=ReconcileOut,
    access="admin",
)
async def reconcile_now(call: Call) -> ReconcileOut:
    report = await call.services.commerce.reconciler.run_once()
    return ReconcileOut.model_validate(report.__dict__)


class BillIn(Input):
    provider: Literal["alipay", "wechat"]
    bill_date: date = Field(alias="date", description="账单日期 (北京时间)")


class BillFindingOut(Output):
    kind: Literal["missing", "extra", "mismatch"]
    row_type: Literal["trade", "refund"]
    out_trade_no: str
    out_refund_no: str | None
    local_fen: int | None
    bill_fen: int | None


class BillReportOut(Output):
    bill_id: int
    provider: str
    bill_date: date
    rows: int
    missing: int
    extra: int
    mismatch: int
    findings: list[BillFindingOut]


@operation(
    "POST",
    "/api/admin/payments/bills",
    summary="Download a day's bill from a provider and reconcile it with the local books",
    tag="admin",
    body=BillIn,
    response=BillReportOut,
    access="admin",
    errors=(404, 422, 502, 503),
)
async def reconcile_bill(call: Call) -> BillReportOut:
    body: BillIn = call.body
    report = await call.services.commerce.reconciler.reconcile_bill(
        body.provider, body.bill_date, call.current_user.id
    )
    return BillReportOut(
        bill_id=report.bill_id,
        provider=report.provider,
        bill_date=report.bill_date,
        rows=report.rows,
        missing=report.count("missing"),
        extra=report.count("extra"),
        mismatch=report.count("mismatch"),
        findings=[BillFindingOut.model_validate(f.__dict__) for f in report.findings],
    )


OPERATIONS: list[Operation] = [
    admin_orders,
    admin_order,
    refund_order,
    query_refund,
    revenue_daily,
    subscribers,
    reconcile_now,
    reconcile_bill,
]

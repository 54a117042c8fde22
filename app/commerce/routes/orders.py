"""Buying: orders, paying them, the caller's own orders and subscription."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.commerce.errors import PaymentsDisabled
from app.commerce.orders import Checkout
from app.commerce.routes.schemas import (
    AttemptOut,
    CheckoutOut,
    OrderIn,
    OrderOut,
    OrderPage,
    OrderStatusName,
    PageQuery,
    PayIn,
    PaymentOut,
    TopupIn,
)
from app.web.operation import Call, Operation, operation
from app.web.types import Output


class MyOrdersQuery(PageQuery):
    status: OrderStatusName | None = None


class OrderDetailOut(OrderOut):
    attempts: list[AttemptOut]


class PeriodOut(Output):
    level: int
    starts_at: datetime
    ends_at: datetime


class SubscriptionOut(Output):
    active: bool
    level: int
    current_period_ends_at: datetime | None
    access_ends_at: datetime | None
    periods: list[PeriodOut]


def _checkout(checkout: Checkout) -> CheckoutOut:
    return CheckoutOut(
        order=OrderOut.model_validate(checkout.order),
        payment=PaymentOut.model_validate(checkout.launch),
    )


def _pay_options(call: Call, body: PayIn) -> dict[str, Any]:
    # WeChat H5 binds the payment to the buyer's IP (the app's client address).
    return {**body.pay_options(), "payer_client_ip": call.client_ip}


def _require_payments(call: Call) -> None:
    if not call.services.commerce.config.features.payments:
        raise PaymentsDisabled()


@operation(
    "POST",
    "/api/orders",
    summary="Order a plan and start paying it",
    tag="commerce",
    body=OrderIn,
    response=CheckoutOut,
    status=201,
    access="user",
    errors=(403, 404, 409, 422, 502, 503),
)
async def create_order(call: Call) -> CheckoutOut:
    _require_payments(call)
    body: OrderIn = call.body
    checkout = await call.services.commerce.orders.create(
        call.current_user.id, body.plan_id, body.provider, body.method, **_pay_options(call, body)
    )
    return _checkout(checkout)


@operation(
    "POST",
    "/api/wallet/topups",
    summary="Buy open API wallet credit (a top-up order) and start paying it",
    tag="commerce",
    body=TopupIn,
    response=CheckoutOut,
    status=201,
    access="user",
    errors=(403, 404, 422, 502, 503),
)
async def create_topup(call: Call) -> CheckoutOut:
    _require_payments(call)
    body: TopupIn = call.body
    checkout = await call.services.commerce.orders.create_topup(
        call.current_user.id,
        body.amount_fen,
        body.provider,
        body.method,
        **_pay_options(call, body),
    )
    return _checkout(checkout)


@operation(
    "POST",
    "/api/orders/{id}/pay",
    summary="Pay a pending order (again, or with another channel)",
    tag="commerce",
    body=PayIn,
    response=CheckoutOut,
    access="user",
    errors=(403, 404, 409, 422, 502, 503),
)
async def pay_order(call: Call) -> CheckoutOut:
    _require_payments(call)
    body: PayIn = call.body
    checkout = await call.services.commerce.orders.pay(
        call.path_id(), call.current_user.id, body.provider, body.method, **_pay_options(call, body)
    )
    return _checkout(checkout)


@operation(
    "POST",
    "/api/orders/{id}/cancel",
    summary="Cancel a pending order",
    tag="commerce",
    response=OrderOut,
    access="user",
    errors=(404, 409, 502, 503),
)
async def cancel_order(call: Call) -> OrderOut:
    order = await call.services.commerce.orders.cancel(call.path_id(), call.current_user.id)
    return OrderOut.model_validate(order)


@operation(
    "GET",
    "/api/orders",
    summary="The caller's orders, newest first",
    tag="commerce",
    query=MyOrdersQuery,
    response=OrderPage,
    access="user",
)
async def my_orders(call: Call) -> OrderPage:
    q: MyOrdersQuery = call.query
    page = await call.services.commerce.orders.page(
        q.page, q.size, user_id=call.current_user.id, status=q.status
    )
    return OrderPage.model_validate(page.to_dict(OrderOut.model_validate))


@operation(
    "GET",
    "/api/orders/{id}",
    summary="One of the caller's orders",
    tag="commerce",
    response=OrderDetailOut,
    access="user",
    errors=(404,),
)
async def my_order(call: Call) -> OrderDetailOut:
    orders = call.services.commerce.orders
    order = await orders.get(call.path_id(), call.current_user.id)
    attempts = [AttemptOut.model_validate(a) for a in await orders.attempts(order.id)]
    return OrderDetailOut.model_validate({**order.to_dict(), "attempts": attempts})


@operation(
    "GET",
    "/api/subscription",
    summary="The caller's subscription window",
    tag="commerce",
    response=SubscriptionOut,
    access="user",
)
async def my_subscription(call: Call) -> SubscriptionOut:
    view = await call.services.commerce.subscriptions.status(call.current_user.id)
    return SubscriptionOut(
        active=view.active,
        level=view.level,
        current_period_ends_at=view.current_period_ends_at,
        access_ends_at=view.access_ends_at,
        periods=[PeriodOut.model_validate(p) for p in view.periods],
    )


OPERATIONS: list[Operation] = [
    create_order,
    create_topup,
    pay_order,
    cancel_order,
    my_orders,
    my_order,
    my_subscription,
]

__all__ = ["OPERATIONS"]

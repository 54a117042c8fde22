"""Plans, checkout, the page that waits for the payment, my subscription and my orders.

Every rule is the commerce service's: the site only picks the method a browser can
use (Alipay cashier page, WeChat native QR) and shows the result.
"""

from __future__ import annotations

import io
from typing import Any

import segno
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.commerce.errors import OrderNotFound, PaymentsDisabled
from app.commerce.models import Order, PaymentAttempt
from app.commerce.routes.schemas import OrderIn, PayIn
from app.site.context import services
from app.site.render import (
    current_user,
    int_param,
    page,
    path_id,
    read_form,
    redirect,
    render,
    validate,
)
from luser_common import ValidationError

# The one method per channel a desktop or phone browser can complete by itself.
BROWSER_METHODS = {"alipay": "page", "wechat": "native"}


def _require_payments(request: Request) -> None:
    if not services(request).commerce.config.features.payments:
        raise PaymentsDisabled()


@page()
async def plans(request: Request) -> Response:
    svc = services(request).commerce
    return render(
        request,
        "plans.html",
        {"plans": await svc.plans.public(), "channels": svc.providers.names()},
    )


def _pay_fields(form: dict[str, str]) -> dict[str, Any]:
    provider = form.get("provider", "")
    if provider not in BROWSER_METHODS:
        raise ValidationError("请选择支付方式", field="provider")
    return {"provider": provider, "method": BROWSER_METHODS[provider]}


def _launched(order: Order, launch: dict[str, Any]) -> Response:
    if launch.get("pay_url"):
        return redirect(str(launch["pay_url"]))  # the (sandbox) Alipay cashier
    return redirect(f"/orders/{order.id}")  # the QR code waits there


@page(login=True)
async def checkout(request: Request) -> Response:
    _require_payments(request)
    form = await read_form(request)
    raw_plan = form.get("plan_id", "")
    if not (raw_plan.isascii() and raw_plan.isdigit()):
        raise ValidationError("请选择套餐", field="plan_id")
    body = validate(OrderIn, {"plan_id": int(raw_plan), **_pay_fields(form)})
    result = await services(request).commerce.orders.create(
        current_user(request).id, body.plan_id, body.provider, body.method
    )
    return _launched(result.order, result.launch)


@page(login=True)
async def pay_again(request: Request) -> Response:
    _require_payments(request)
    form = await read_form(request)
    body = validate(PayIn, _pay_fields(form))
    result = await services(request).commerce.orders.pay(
        path_id(request), current_user(request).id, body.provider, body.method
    )
    return _launched(result.order, result.launch)


async def _own_order(request: Request) -> tuple[Order, PaymentAttempt | None]:
    orders = services(request).commerce.orders
    order = await orders.get(path_id(request), current_user(request).id)
    launched = [a for a in await orders.attempts(order.id) if a.launch]
    return order, (launched[-1] if launched else None)


@page(login=True)
async def order_page(request: Request) -> Response:
    order, attempt = await _own_order(request)
    qr = bool(attempt and attempt.launch and attempt.launch.get("code_url"))
    return render(
        request,
        "order.html",
        {
            "order": order,
            "attempt": attempt,
            "qr": qr,
            "channels": services(request).commerce.providers.names(),
        },
    )


@page(login=True)
async def order_status(request: Request) -> Response:
    order, _ = await _own_order(request)
    return JSONResponse({"status": order.status})


@page(login=True)
async def order_qr(request: Request) -> Response:
    order, attempt = await _own_order(request)
    code_url = attempt.launch.get("code_url") if attempt and attempt.launch else None
    if order.status != "pending" or not code_url:
        raise OrderNotFound("该订单没有待扫码的微信支付")
    out = io.BytesIO()
    segno.make(str(code_url), error="m").save(out, kind="png", scale=6, border=2)
    return Response(out.getvalue(), media_type="image/png", headers={"Cache-Control": "no-store"})


@page(login=True)
async def my_orders(request: Request) -> Response:
    orders = await services(request).commerce.orders.page(
        int_param(request, "page"), 20, user_id=current_user(request).id
    )
    return render(request, "my_orders.html", {"orders": orders})


@page(login=True)
async def my_subscription(request: Request) -> Response:
    view = await services(request).commerce.subscriptions.status(current_user(request).id)
    return render(request, "subscription.html", {"sub": view})

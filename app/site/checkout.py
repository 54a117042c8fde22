"""Plans, checkout, the page that waits for the payment, my subscription and my orders.

Every rule is the commerce service's: the site only picks the method a browser can
use (Alipay cashier page, WeChat native QR) and shows the result.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
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
from app.web.operation import Call
from luser_common import ValidationError


@dataclass(frozen=True)
class PayOption:
    provider: str
    method: str
    label: str


# The pay types a desktop or phone browser can complete by itself, by form value
# (the bare provider name is its default type, so old forms keep working).
PAY_OPTIONS = {
    "alipay": PayOption("alipay", "page", "支付宝 (网页收银台)"),
    "alipay-qr": PayOption("alipay", "precreate", "支付宝 (扫码)"),
    "wechat": PayOption("wechat", "native", "微信支付 (扫码)"),
    "wechat-h5": PayOption("wechat", "h5", "微信支付 (手机浏览器)"),
}


def pay_options(channels: list[str]) -> dict[str, PayOption]:
    """The options of the configured channels, for the forms."""
    return {key: o for key, o in PAY_OPTIONS.items() if o.provider in channels}


def _require_payments(request: Request) -> None:
    if not services(request).commerce.config.features.payments:
        raise PaymentsDisabled()


@page()
async def plans(request: Request) -> Response:
    svc = services(request).commerce
    return render(
        request,
        "plans.html",
        {"plans": await svc.plans.public(), "options": pay_options(list(svc.providers.names()))},
    )


def _pay_fields(form: dict[str, str]) -> dict[str, Any]:
    option = PAY_OPTIONS.get(form.get("provider", ""))
    if option is None:
        raise ValidationError("请选择支付方式", field="provider")
    return {"provider": option.provider, "method": option.method}


def _pay_options(request: Request, method: str) -> dict[str, Any]:
    # WeChat checks that the browser opening h5_url is the one that ordered.
    return {"payer_client_ip": Call(request).client_ip} if method == "h5" else {}


def _launched(order: Order, launch: dict[str, Any]) -> Response:
    if launch.get("pay_url"):
        return redirect(str(launch["pay_url"]))  # the (sandbox) Alipay cashier
    if launch.get("h5_url"):
        return redirect(str(launch["h5_url"]))  # WeChat's mobile cashier
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
        current_user(request).id,
        body.plan_id,
        body.provider,
        body.method,
        **_pay_options(request, body.method),
    )
    return _launched(result.order, result.launch)


@page(login=True)
async def pay_again(request: Request) -> Response:
    _require_payments(request)
    form = await read_form(request)
    body = validate(PayIn, _pay_fields(form))
    result = await services(request).commerce.orders.pay(
        path_id(request),
        current_user(request).id,
        body.provider,
        body.method,
        **_pay_options(request, body.method),
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
    providers = services(request).commerce.providers
    return render(
        request,
        "order.html",
        {
            "order": order,
            "attempt": attempt,
            "qr": _qr_text(attempt) is not None,
            "options": pay_options(list(providers.names())),
        },
    )


def _qr_text(attempt: PaymentAttempt | None) -> str | None:
    """What the buyer scans: WeChat native's ``code_url`` or Alipay precreate's ``qr_code``."""
    launch = attempt.launch if attempt and attempt.launch else {}
    text = launch.get("code_url") or launch.get("qr_code")
    return str(text) if text else None


@page(login=True)
async def order_status(request: Request) -> Response:
    order, _ = await _own_order(request)
    return JSONResponse({"status": order.status})


@page(login=True)
async def order_qr(request: Request) -> Response:
    order, attempt = await _own_order(request)
    text = _qr_text(attempt)
    if order.status != "pending" or text is None:
        raise OrderNotFound("该订单没有待扫码的支付")
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="png", scale=6, border=2)
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

"""Commerce errors: luser_common classes with precise, stable codes."""

from __future__ import annotations

from luser_common.errors import BusinessError, Conflict, Forbidden, NotFound

__all__ = [
    "OrderExpired",
    "OrderNotFound",
    "OrderNotPayable",
    "PaymentsDisabled",
    "PlanNotFound",
    "PlanUnavailable",
    "RefundNotAllowed",
    "RefundNotFound",
]


class PlanNotFound(NotFound):
    code = "PLAN_NOT_FOUND"
    default_message = "套餐不存在"


class PlanUnavailable(BusinessError):
    code = "PLAN_UNAVAILABLE"
    default_message = "套餐已下架"


class OrderNotFound(NotFound):
    code = "ORDER_NOT_FOUND"
    default_message = "订单不存在"


class OrderNotPayable(Conflict):
    code = "ORDER_NOT_PAYABLE"
    default_message = "订单当前状态不能支付"


class OrderExpired(Conflict):
    code = "ORDER_EXPIRED"
    default_message = "订单已过期, 请重新下单"


class RefundNotAllowed(Conflict):
    code = "REFUND_NOT_ALLOWED"
    default_message = "订单当前状态不能退款"


class RefundNotFound(NotFound):
    code = "REFUND_NOT_FOUND"
    default_message = "退款不存在"


class PaymentsDisabled(Forbidden):
    code = "PAYMENTS_DISABLED"
    default_message = "支付功能未开启"

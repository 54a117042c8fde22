"""The words a subscriber reads, per kind of notification (Chinese, from the payload)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["KINDS", "render"]

KINDS = ("payment_succeeded", "refund_succeeded", "subscription_expired")


def _yuan(fen: Any) -> str:
    return f"{int(fen) / 100:.2f}"


def render(kind: str, payload: Mapping[str, Any]) -> tuple[str, str]:
    """(title, body) for a notification."""
    if kind == "payment_succeeded":
        paid = _yuan(payload.get("amount_fen", 0))
        return (
            "支付成功",
            f"您已成功购买「{payload.get('plan_name', '')}」, 支付 {paid} 元,"
            f" 订单号 {payload.get('order_no', '')}。",
        )
    if kind == "refund_succeeded":
        return (
            "退款已受理",
            f"订单 {payload.get('order_no', '')} 的退款 {_yuan(payload.get('amount_fen', 0))} 元"
            " 已提交, 将原路退回。",
        )
    if kind == "subscription_expired":
        return ("会员已到期", "您的会员已到期, 续订后即可继续观看会员视频。")
    raise ValueError(f"unknown notification kind {kind!r}")

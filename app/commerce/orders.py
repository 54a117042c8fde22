"""Orders and payment attempts.

An order is created pending with an expiry; each try to pay it is a payment
attempt with a fresh ``out_trade_no``. The attempt row is committed *before*
the provider is called, so a trade the provider created is always known to
reconciliation even if this process dies mid-call. A short retry on the same
channel and method reuses the attempt (WeChat asks merchants to reuse
``code_url`` rather than re-order); anything else gets a new number.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from app.commerce._ids import new_number
from app.commerce.errors import OrderExpired, OrderNotFound, OrderNotPayable, PlanUnavailable
from app.commerce.models import Order, PaymentAttempt, Plan
from app.commerce.status import AttemptStatus, OrderKind, OrderStatus
from app.payments import PaymentLaunch, PaymentMethod, PaymentProvider, PaymentProviders
from app.settings import PaymentConfig
from luser_common import Page, utc_now
from luser_common.errors import AppError, ExternalServiceError, ValidationError
from luser_db import Db, transaction

__all__ = ["Checkout", "Orders"]

logger = logging.getLogger("luser.commerce")

_NEVER_CREATED = frozenset({"ORDER_NOT_EXIST", "ACQ.TRADE_NOT_EXIST"})
# How long a launched attempt may be handed out again for the same channel and method.
REUSE_SECONDS = 600
# Methods whose launch (a pay URL or a QR code) may be handed out again.
_REUSABLE = frozenset(
    {PaymentMethod.PAGE, PaymentMethod.WAP, PaymentMethod.NATIVE, PaymentMethod.PRECREATE}
)
_NEEDS_OPENID = frozenset({PaymentMethod.JSAPI, PaymentMethod.MINIPROGRAM})


@dataclass(frozen=True)
class Checkout:
    """An order, the attempt now being paid, and what the front end needs to pay it."""

    order: Order
    attempt: PaymentAttempt
    launch: dict[str, Any]


class Orders:
    def __init__(self, providers: PaymentProviders, config: PaymentConfig) -> None:
        self.providers = providers
        self.config = config

    # -- reading ---------------------------------------------------------------------

    async def get(self, order_id: int, user_id: int | None = None) -> Order:
        """The order; with ``user_id``, only if it is that user's (else not found)."""
        order = await Order.find_by_id(order_id)
        if order is None or (user_id is not None and order.user_id != user_id):
            raise OrderNotFound()
        return order

    async def page(
        self,
        page: int,
        size: int,
        *,
        user_id: int | None = None,
        status: str | None = None,
        flagged: bool = False,
    ) -> Page[Order]:
        """Newest first; ``flagged``: only orders with a payment that needs a human."""
        query = Order.query()
        if user_id is not None:
            query = query.where("user_id = ?", user_id)
        if status is not None:
            query = query.where("status = ?", status)
        if flagged:
            query = query.where(
                "EXISTS (SELECT 1 FROM payment_attempts a"
                " WHERE a.order_id = orders.id AND a.flagged)"
            )
        return await query.order_by("id desc").paginate(page, size)

    async def attempts(self, order_id: int) -> list[PaymentAttempt]:
        return await PaymentAttempt.query().where("order_id = ?", order_id).order_by("id").all()

    # -- buying ----------------------------------------------------------------------

    async def create(
        self, user_id: int, plan_id: int, provider: str, method: str, **pay: Any
    ) -> Checkout:
        """A pending order for ``plan_id``, then its first payment attempt."""
        channel = self._channel(provider, method, pay)
        plan = await Plan.find_by_id(plan_id)
        if plan is None or not plan.active:
            raise PlanUnavailable(details={"plan_id": plan_id})
        order = Order(
            order_no=new_number("O"),
            user_id=user_id,
            plan_id=plan.id,
            plan_name=plan.name,
            plan_level=plan.level,
            duration_days=plan.duration_days,
            amount_fen=plan.price_fen,
            expires_at=utc_now() + timedelta(minutes=self.config.order_expire_minutes),
        )
        await order.save()
        return await self._launch(order, channel, method, pay)

    async def create_topup(
        self, user_id: int, amount_fen: int, provider: str, method: str, **pay: Any
    ) -> Checkout:
        """A pending wallet top-up of ``amount_fen``, then its first payment attempt.

        The amount must be 1 .. ``payment.topup_max_fen``; checked before anything
        is written.
        """
        limit = self.config.topup_max_fen
        if isinstance(amount_fen, bool) or not isinstance(amount_fen, int):
            raise ValidationError("充值金额必须是整数 (分)", field="amount_fen")
        if not 1 <= amount_fen <= limit:
            raise ValidationError(f"充值金额必须在 1 到 {limit} 分之间", field="amount_fen")
        channel = self._channel(provider, method, pay)
        order = Order(
            order_no=new_number("O"),
            user_id=user_id,
            kind=OrderKind.TOPUP,
            plan_id=None,
            plan_name="钱包充值",
            plan_level=0,
            duration_days=0,
            amount_fen=amount_fen,
            expires_at=utc_now() + timedelta(minutes=self.config.order_expire_minutes),
        )
        await order.save()
        return await self._launch(order, channel, method, pay)

    async def pay(
        self, order_id: int, user_id: int, provider: str, method: str, **pay: Any
    ) -> Checkout:
        """Pay a pending order again, possibly with another channel or method."""
        channel = self._channel(provider, method, pay)
        order = await self.get(order_id, user_id)
        return await self._launch(order, channel, method, pay)

    def _channel(self, provider: str, method: str, pay: dict[str, Any]) -> PaymentProvider:
        """The provider, once the request's channel options are known to be acceptable.

        Runs before anything is written: a refused checkout leaves no order or attempt.
        """
        channel = self.providers.get(provider)
        if pay.get("return_url"):
            _check_return_url(channel, pay["return_url"])
        try:
            chosen = PaymentMethod(method)
        except ValueError:
            chosen = None
        enabled = channel.enabled_methods()
        if chosen is None or chosen not in enabled:
            allowed = ", ".join(sorted(enabled))
            raise ValidationError(f"{provider} 不支持该支付方式, 可选: {allowed}", field="method")
        if chosen in _NEEDS_OPENID and not (pay.get("payer_openid") or "").strip():
            name = "JSAPI" if chosen is PaymentMethod.JSAPI else "小程序"
            raise ValidationError(f"{name} 支付需要用户的 payer_openid", field="payer_openid")
        return channel

    async def _launch(
        self, order: Order, channel: PaymentProvider, method: str, pay: dict[str, Any]
    ) -> Checkout:
        _ensure_payable(order)
        reusable = await self._reusable(order, channel.name, method, pay)
        if reusable is not None:
            assert reusable.launch is not None
            return Checkout(order, reusable, reusable.launch)
        attempt = PaymentAttempt(
            order_id=order.id,
            provider=channel.name,
            method=method,
            out_trade_no=new_number("P"),
            amount_fen=order.amount_fen,
        )
        await attempt.save()  # committed before the provider hears of it
        launch = await self._call_provider(channel, order, attempt, method, pay)
        attempt.launch = _launch_dict(launch)
        attempt.error = None
        await attempt.update()
        return Checkout(order, attempt, attempt.launch)

    async def _reusable(
        self, order: Order, provider: str, method: str, pay: dict[str, Any]
    ) -> PaymentAttempt | None:
        if method not in _REUSABLE or pay.get("return_url"):
            # JSAPI / mini program / APP parameters are signed per payer and moment;
            # an H5 link is bound to the payer's IP and lives only 5 minutes.
            return None
        since = utc_now() - timedelta(seconds=REUSE_SECONDS)
        return await (
            PaymentAttempt.query()
            .where("order_id = ? AND provider = ? AND method = ?", order.id, provider, method)
            .where(
                f"status = '{AttemptStatus.PENDING}' AND launch IS NOT NULL AND created_at > ?",
                since,
            )
            .order_by("id desc")
            .first()
        )

    async def _call_provider(
        self,
        channel: PaymentProvider,
        order: Order,
        attempt: PaymentAttempt,
        method: str,
        pay: dict[str, Any],
    ) -> PaymentLaunch:
        try:
            return await channel.create_payment(
                attempt.out_trade_no,
                order.plan_name,
                order.amount_fen,
                method,
                payer_openid=pay.get("payer_openid"),
                payer_client_ip=pay.get("payer_client_ip"),
                expire_at=order.expires_at,
                return_url=pay.get("return_url"),
            )
        except ExternalServiceError as exc:
            # The provider refused: this number will never be paid.
            attempt.status, attempt.error = AttemptStatus.FAILED, exc.message[:500]
            await attempt.update()
            raise
        except AppError as exc:
            # Unreachable: the trade may exist. Stays pending for reconciliation.
            attempt.error = exc.message[:500]
            await attempt.update()
            raise

    # -- closing ---------------------------------------------------------------------

    async def cancel(self, order_id: int, user_id: int) -> Order:
        """The user gives up a pending order: close its trades, then the order."""
        order = await self.get(order_id, user_id)
        if order.status != OrderStatus.PENDING:
            raise OrderNotPayable("只有待支付的订单可以取消")
        await self.close_attempts(order)
        await self.finish_unpaid(order.id, OrderStatus.CLOSED)
        return await self.get(order.id)

    async def close_attempts(self, order: Order, *, except_id: int | None = None) -> None:
        """Close every pending attempt of ``order`` at its provider, then locally."""
        for attempt in await self.attempts(order.id):
            if attempt.status == AttemptStatus.PENDING and attempt.id != except_id:
                await self.close_attempt(attempt)

    async def close_attempt(self, attempt: PaymentAttempt) -> None:
        """Close at the provider first: only then can the trade no longer be paid."""
        try:
            await self.providers.get(attempt.provider).close(attempt.out_trade_no)
        except ExternalServiceError as exc:
            # The provider never created the trade (the buyer never opened it).
            code = exc.details.get("code") if isinstance(exc.details, dict) else None
            if code not in _NEVER_CREATED:
                raise
        await Db.execute(
            f"UPDATE payment_attempts SET status = '{AttemptStatus.CLOSED}', closed_at = now(),"
            f" updated_at = now() WHERE id = ? AND status = '{AttemptStatus.PENDING}'",
            attempt.id,
        )

    async def finish_unpaid(self, order_id: int, status: OrderStatus) -> bool:
        """pending -> closed/expired, unless a payment got there first."""
        async with transaction():
            return (
                await Db.execute(
                    "UPDATE orders SET status = ?, closed_at = now(), updated_at = now()"
                    f" WHERE id = ? AND status = '{OrderStatus.PENDING}'"
                    " AND NOT EXISTS (SELECT 1 FROM payment_attempts a"
                    f"                 WHERE a.order_id = orders.id"
                    f" AND a.status = '{AttemptStatus.PENDING}')",
                    status,
                    order_id,
                )
                == 1
            )


def _ensure_payable(order: Order) -> None:
    if order.status != OrderStatus.PENDING:
        raise OrderNotPayable(details={"status": order.status})
    assert order.expires_at is not None
    if order.expires_at <= utc_now():
        raise OrderExpired()


def _check_return_url(channel: PaymentProvider, url: str) -> None:
    # The provider sends the buyer's browser there: only to our own site, never to
    # an address a client made up (an open redirect dressed in the cashier's trust).
    configured = str(getattr(getattr(channel, "config", None), "return_url", "") or "")
    ours = urlsplit(configured)
    theirs = urlsplit(url)
    if not configured or (theirs.scheme, theirs.netloc) != (ours.scheme, ours.netloc):
        raise ValidationError("return_url 必须与配置的跳转地址同源", field="return_url")


def _launch_dict(launch: PaymentLaunch) -> dict[str, Any]:
    data = dataclasses.asdict(launch)
    data["method"] = str(launch.method)
    return {k: v for k, v in data.items() if v is not None}

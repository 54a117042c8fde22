"""The one interface every payment provider implements.

All methods that talk to the provider are coroutines; the blocking SDK calls
behind them run in a worker thread (:func:`run_blocking`) so the event loop
never waits on a provider's network.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from datetime import date, datetime
from functools import partial
from typing import ClassVar, TypeVar

import anyio.to_thread
from starlette.responses import Response

from app.payments.bills import Bill
from app.payments.models import (
    PaymentLaunch,
    PaymentMethod,
    PaymentNotification,
    RefundResult,
    TradeState,
)
from app.payments.money import require_fen
from luser_common.errors import ValidationError

__all__ = ["PaymentProvider", "run_blocking"]

T = TypeVar("T")


async def run_blocking(func: Callable[..., T], /, *args: object, **kwargs: object) -> T:
    """Run a blocking SDK call in anyio's worker thread pool."""
    return await anyio.to_thread.run_sync(partial(func, *args, **kwargs))


class PaymentProvider(ABC):
    """A payment channel (Alipay, WeChat Pay) behind one async interface.

    Errors: bad arguments -> ``ValidationError`` (422), raised before any call;
    the provider refused or answered nonsense -> ``PaymentProviderError``
    (an ``ExternalServiceError``, 502, provider code in ``provider_code`` and
    ``details["code"]``); unreachable or timed out -> ``PaymentProviderUnavailable``
    (a ``NetworkError``, 503). ``verify_notification`` raises
    ``PaymentNotifyInvalid`` or its subclasses ``PaymentNotifyStale`` and
    ``PaymentNotifyMismatch`` (all 400).
    """

    name: ClassVar[str]
    methods: ClassVar[frozenset[PaymentMethod]]
    # The channel trade number's alphabet and length, as the provider accepts it.
    _out_trade_no_pattern: ClassVar[re.Pattern[str]]

    @abstractmethod
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
        """Start a payment. ``expire_at`` (aware) bounds when it may still be paid.

        ``payer_openid``: WeChat JSAPI / mini program; ``payer_client_ip``: WeChat H5.
        """

    @abstractmethod
    async def query(self, out_trade_no: str) -> TradeState:
        """Ask the provider for the trade's current state."""

    @abstractmethod
    async def close(self, out_trade_no: str) -> None:
        """Close an unpaid trade so it can no longer be paid.

        A trade the provider never created counts as closed. Closing a paid
        trade fails with ExternalServiceError (query first).
        """

    @abstractmethod
    async def refund(
        self,
        out_trade_no: str,
        out_refund_no: str,
        refund_fen: int,
        total_fen: int,
        reason: str = "",
    ) -> RefundResult:
        """Refund ``refund_fen`` of a paid trade. ``out_refund_no`` makes retries idempotent."""

    @abstractmethod
    async def query_refund(self, out_trade_no: str, out_refund_no: str) -> RefundResult:
        """Ask the provider how a refund stands now.

        A refund the provider does not know raises ``PaymentRefundUnknown`` (404).
        """

    @abstractmethod
    async def download_bill(self, bill_date: date) -> Bill:
        """The provider's trade bill for ``bill_date`` (Beijing day): payments and refunds.

        A file that cannot be parsed raises ``PaymentProviderError`` (``BILL_INVALID``).
        """

    @abstractmethod
    async def verify_notification(
        self, headers: Mapping[str, str], raw_body: bytes
    ) -> PaymentNotification:
        """Verify a notification exactly as received (raw bytes, never re-serialised)."""

    @abstractmethod
    def success_reply(self) -> Response:
        """The reply that stops the provider from resending."""

    @abstractmethod
    def failure_reply(self, error: Exception | str | None = None) -> Response:
        """The reply that asks the provider to resend later."""

    # -- shared argument checks ----------------------------------------------------

    def enabled_methods(self) -> frozenset[PaymentMethod]:
        """The methods this configured provider offers (some need extra config)."""
        return self.methods

    def _check_method(self, method: PaymentMethod | str) -> PaymentMethod:
        try:
            chosen = PaymentMethod(method)
        except ValueError:
            chosen = None
        enabled = self.enabled_methods()
        if chosen is None or chosen not in enabled:
            allowed = ", ".join(sorted(enabled))
            raise ValidationError(f"{self.name} 不支持的支付方式, 可选: {allowed}", field="method")
        return chosen

    def _check_out_trade_no(self, value: str, field: str = "out_trade_no") -> str:
        # The value ends up in URL paths (WeChat) and signed strings: be strict.
        if not isinstance(value, str) or not self._out_trade_no_pattern.fullmatch(value):
            raise ValidationError(f"{field} 格式不正确", field=field)
        return value

    @staticmethod
    def _check_text(value: str, field: str, max_len: int) -> str:
        if not isinstance(value, str) or not value.strip() or len(value) > max_len:
            raise ValidationError(f"{field} 不能为空且不超过 {max_len} 个字符", field=field)
        return value

    @staticmethod
    def _check_refund(refund_fen: int, total_fen: int) -> None:
        require_fen(refund_fen, "refund_fen")
        require_fen(total_fen, "total_fen")
        if refund_fen > total_fen:
            raise ValidationError("退款金额不能超过订单金额", field="refund_fen")

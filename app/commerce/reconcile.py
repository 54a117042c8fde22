"""Reconciliation: what the notifications did not tell us, the provider's query does.

One pass (:meth:`Reconciler.run_once`):

1. every attempt still pending after ``reconcile_after_minutes`` (or whose order
   has expired or stopped being payable) is queried at its provider; a paid
   trade is applied exactly like a notification (same checks, same single
   transaction), a closed one is recorded;
2. an unpaid attempt whose order expired or is no longer pending is closed at
   the provider first, so that no payment can land on it afterwards;
3. pending orders past their expiry with no open attempt become ``expired``;
4. refunds whose outcome is unknown are retried with the same refund number.

Runs in the service (a background task, see :func:`reconcile_forever`) and as
``luser payments reconcile``. Every step is idempotent, so two runners at
once are wasteful but harmless.

:meth:`Reconciler.reconcile_bill` checks a provider's daily bill against the
local payments and refunds of that Beijing day: rows the bill lacks
(``missing``), rows only the bill has (``extra``) and rows whose amounts differ
(``mismatch``); the provider's file is stored with the report (``payment_bills``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from app.commerce.models import Order, PaymentAttempt
from app.commerce.notifications import Payments
from app.commerce.orders import Orders
from app.commerce.refunds import Refunds
from app.commerce.status import AttemptStatus, OrderStatus
from app.payments import PaymentProviders, TradeState, TradeStatus, WechatPayProvider
from app.payments.bills import Bill, BillRow
from app.payments.errors import provider_error
from app.settings import PaymentConfig
from luser_common import utc_now
from luser_common.errors import AppError, NotFound
from luser_common.tasks import every
from luser_db import Db, transaction

__all__ = ["BillFinding", "BillReport", "ReconcileReport", "Reconciler", "reconcile_forever"]

logger = logging.getLogger("luser.commerce")

BATCH = 200


@dataclass
class ReconcileReport:
    checked: int = 0
    paid: int = 0
    flagged: int = 0
    closed: int = 0
    expired: int = 0
    refunds_retried: int = 0
    errors: int = 0


_BILL_LISTED = (  # a stored bill report's columns, without its file and findings
    "id",
    "provider",
    "bill_type",
    "bill_date",
    "row_count",
    "missing",
    "extra",
    "mismatched",
    "created_at",
)


@dataclass(frozen=True)
class BillFinding:
    """One disagreement between a bill and the local books.

    ``missing``: we hold a payment / refund the bill does not list; ``extra``: the
    bill lists one we do not hold; ``mismatch``: both do, with other amounts.
    """

    kind: str
    row_type: str
    out_trade_no: str
    out_refund_no: str | None
    local_fen: int | None
    bill_fen: int | None


@dataclass
class BillReport:
    bill_id: int
    provider: str
    bill_date: date
    rows: int
    findings: list[BillFinding] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(1 for f in self.findings if f.kind == kind)


# Beijing wall-clock date of a timestamptz column (no DST in China since 1991).
_BEIJING_DATE = "(({col} AT TIME ZONE 'UTC') + interval '8 hours')::date"


class Reconciler:
    def __init__(
        self,
        providers: PaymentProviders,
        config: PaymentConfig,
        orders: Orders,
        payments: Payments,
        refunds: Refunds,
    ) -> None:
        self.providers = providers
        self.config = config
        self.orders = orders
        self.payments = payments
        self.refunds = refunds

    async def run_once(self, now: datetime | None = None) -> ReconcileReport:
        now = now or utc_now()
        report = ReconcileReport()
        for attempt in await self._due(now):
            report.checked += 1
            try:
                await self._check(attempt, now, report)
            except AppError as exc:
                report.errors += 1
                logger.warning("reconcile %s failed: %s", attempt.out_trade_no, exc.message)
        report.expired = await self._expire(now)
        report.refunds_retried = await self.refunds.retry_pending()
        return report

    async def _due(self, now: datetime) -> list[PaymentAttempt]:
        cutoff = now - timedelta(minutes=self.config.reconcile_after_minutes)
        return await PaymentAttempt.find(
            "SELECT a.* FROM payment_attempts a JOIN orders o ON o.id = a.order_id"
            f" WHERE a.status = '{AttemptStatus.PENDING}'"
            f" AND (a.created_at < ? OR o.expires_at <= ? OR o.status <> '{OrderStatus.PENDING}')"
            " ORDER BY a.id LIMIT ?",
            cutoff,
            now,
            BATCH,
        )

    async def _check(self, attempt: PaymentAttempt, now: datetime, report: ReconcileReport) -> None:
        if attempt.provider not in self.providers:
            return  # channel disabled since: nothing to ask
        state = await self.providers.get(attempt.provider).query(attempt.out_trade_no)
        await Db.execute("UPDATE payment_attempts SET checked_at = now() WHERE id = ?", attempt.id)
        if state.status is TradeStatus.SUCCEEDED:
            await self._paid(attempt, state, report)
        elif state.status is TradeStatus.CLOSED:
            await _mark_closed(attempt)
            report.closed += 1
        elif state.status in (TradeStatus.PENDING, TradeStatus.NOT_FOUND):
            order = await Order.find_by_id(attempt.order_id)
            assert order is not None and order.expires_at is not None
            if order.status != OrderStatus.PENDING or order.expires_at <= now:
                await self.orders.close_attempt(attempt)
                report.closed += 1
        else:
            logger.error("attempt %s is %s at the provider", attempt.out_trade_no, state.status)

    async def _paid(
        self, attempt: PaymentAttempt, state: TradeState, report: ReconcileReport
    ) -> None:
        amount = state.amount_fen if state.amount_fen is not None else -1
        event = await self.payments.record_query(
            attempt, str(state.status), max(amount, 0), state.raw
        )
        if event.outcome in ("applied", "duplicate", "flagged", "ignored"):
            return
        if amount != attempt.amount_fen:
            logger.error(
                "attempt %s paid %s fen, expected %s: not applied",
                attempt.out_trade_no,
                amount,
                attempt.amount_fen,
            )
            await Db.execute(
                "UPDATE payment_attempts SET flagged = true, flag_reason = 'amount_mismatch'"
                " WHERE id = ?",
                attempt.id,
            )
            await Db.execute(
                "UPDATE payment_events SET outcome = 'rejected', reason = 'amount' WHERE id = ?",
                event.id,
            )
            report.flagged += 1
            return
        outcome = await self.payments.apply_paid(attempt, state.trade_no, state.paid_at, event.id)
        if outcome.outcome == "applied":
            report.paid += 1
        elif outcome.outcome == "flagged":
            report.flagged += 1

    async def _expire(self, now: datetime) -> int:
        ids = await Db.query_column(
            f"SELECT id FROM orders WHERE status = '{OrderStatus.PENDING}' AND expires_at <= ?"
            " ORDER BY id LIMIT ?",
            now,
            BATCH,
        )
        expired = 0
        for order_id in ids:
            expired += await self.orders.finish_unpaid(order_id, OrderStatus.EXPIRED)
        return expired

    # -- daily bills -------------------------------------------------------------------

    async def stored_bills(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest stored bill reports (without their files or findings)."""
        rows = (
            await Db.query("payment_bills")
            .select(*_BILL_LISTED)
            .order_by("id desc")
            .limit(limit)
            .all()
        )
        return [dict(r) for r in rows]

    async def stored_bill(self, bill_id: int) -> dict[str, Any]:
        """One stored bill report with its findings; NotFound if there is none."""
        row = (
            await Db.query("payment_bills")
            .select(*_BILL_LISTED, "filename", "sha256", "findings")
            .where("id = ?", bill_id)
            .first()
        )
        if row is None:
            raise NotFound("对账单不存在", details={"bill_id": bill_id})
        bill = dict(row)
        if isinstance(bill["findings"], str):  # jsonb read back as text without a codec
            bill["findings"] = json.loads(bill["findings"])
        return bill

    async def reconcile_bill(
        self, provider: str, bill_date: date, admin_id: int | None = None
    ) -> BillReport:
        """Download the day's bill, compare it with the local books, store file and report.

        A bill that cannot be parsed (or lists a row twice) raises before anything
        is written.
        """
        channel = self.providers.get(provider)
        bill = await channel.download_bill(bill_date)
        expected = _by_key(provider, bill.rows)
        # WeChat's fund-flow bill rides along for audit (parsed, so checked, first).
        audit = (
            [await channel.download_fundflow_bill(bill_date)]
            if isinstance(channel, WechatPayProvider)
            else []
        )
        local = await _local_rows(provider, bill_date)
        findings = _compare(local, expected)
        async with transaction():
            for extra in audit:
                await _store(extra, [], admin_id)
            return await _store(bill, findings, admin_id)


def _by_key(provider: str, rows: list[BillRow]) -> dict[tuple[str, str], BillRow]:
    keyed: dict[tuple[str, str], BillRow] = {}
    for row in rows:
        if row.key in keyed:
            raise provider_error(provider, "BILL_INVALID", f"账单中重复的记录: {row.key[1]}")
        keyed[row.key] = row
    return keyed


async def _local_rows(provider: str, bill_date: date) -> dict[tuple[str, str], BillRow]:
    """The payments (by Beijing day of payment) and accepted refunds (by Beijing day
    of request) we hold for that provider and day."""
    paid = await Db.find(
        "SELECT out_trade_no, amount_fen FROM payment_attempts"
        " WHERE provider = ? AND paid_at IS NOT NULL"
        f" AND {_BEIJING_DATE.format(col='paid_at')} = ?",
        provider,
        bill_date,
    )
    refunded = await Db.find(
        "SELECT a.out_trade_no, r.out_refund_no, r.amount_fen FROM refunds r"
        " JOIN payment_attempts a ON a.id = r.attempt_id"
        " WHERE a.provider = ? AND r.status IN ('succeeded', 'processing')"
        f" AND {_BEIJING_DATE.format(col='r.created_at')} = ?",
        provider,
        bill_date,
    )
    rows = [BillRow("trade", r["out_trade_no"], r["amount_fen"]) for r in paid]
    rows += [
        BillRow("refund", r["out_trade_no"], r["amount_fen"], r["out_refund_no"]) for r in refunded
    ]
    return {row.key: row for row in rows}


def _compare(
    local: dict[tuple[str, str], BillRow], bill: dict[tuple[str, str], BillRow]
) -> list[BillFinding]:
    findings: list[BillFinding] = []
    for key in sorted(local.keys() | bill.keys()):
        mine, theirs = local.get(key), bill.get(key)
        row = mine or theirs
        assert row is not None
        if mine is not None and theirs is not None and mine.amount_fen == theirs.amount_fen:
            continue
        kind = "missing" if theirs is None else "extra" if mine is None else "mismatch"
        findings.append(
            BillFinding(
                kind,
                row.kind,
                row.out_trade_no,
                row.out_refund_no,
                mine.amount_fen if mine else None,
                theirs.amount_fen if theirs else None,
            )
        )
    return findings


async def _store(bill: Bill, findings: list[BillFinding], admin_id: int | None) -> BillReport:
    report = BillReport(0, bill.provider, bill.bill_date, bill.entries, findings)
    bill_id = await Db.query_int(
        "INSERT INTO payment_bills (provider, bill_type, bill_date, filename, raw, sha256,"
        " row_count, missing, extra, mismatched, findings, created_by)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?::jsonb, ?) RETURNING id",
        bill.provider,
        bill.bill_type,
        bill.bill_date,
        bill.filename,
        bill.raw,
        hashlib.sha256(bill.raw).hexdigest(),
        bill.entries,
        report.count("missing"),
        report.count("extra"),
        report.count("mismatch"),
        json.dumps([asdict(f) for f in findings], ensure_ascii=False),
        admin_id,
    )
    assert bill_id is not None
    report.bill_id = bill_id
    for finding in findings:
        logger.warning("bill %s %s: %s", bill.provider, bill.bill_date, finding)
    return report


async def _mark_closed(attempt: PaymentAttempt) -> None:
    await Db.execute(
        f"UPDATE payment_attempts SET status = '{AttemptStatus.CLOSED}', closed_at = now(),"
        f" updated_at = now() WHERE id = ? AND status = '{AttemptStatus.PENDING}'",
        attempt.id,
    )


async def reconcile_forever(reconciler: Reconciler, interval_seconds: int) -> None:
    """The service's background job: one pass every ``interval_seconds`` (a failed pass
    is logged and the next one runs as usual: luser_common.tasks.every)."""

    async def one_pass() -> None:
        report = await reconciler.run_once()
        if report.paid or report.flagged or report.expired or report.errors:
            logger.info("payment reconciliation: %s", report)

    await every(interval_seconds, one_pass, name="payment-reconciliation")

"""Charging a call: wallet debit + token quota + idempotency record, all or nothing.

One call of the PL/pgSQL function ``open_api_charge`` (migration 0046), hence one
implicit transaction and one round trip. It runs, in order:

1. ``pg_advisory_xact_lock(hashtextextended(request_id, 0))`` -- every attempt with
   the same request_id waits here until the earlier one commits or rolls back;
2. ``SELECT ... FROM quota_deductions WHERE request_id = ...`` over every monthly
   partition, in a statement of its own: the function is VOLATILE, so under READ
   COMMITTED this statement's snapshot is taken after the lock and sees the attempt
   it waited for, in whichever month that one was charged. Found: the row comes
   back as ``exists``, and nothing is written;
3. otherwise ``INSERT INTO quota_deductions``, then ``UPDATE users SET balance =
   balance - c WHERE id = u AND status = 'active' AND balance >= c``, then ``UPDATE
   api_tokens SET used_quota = used_quota + c WHERE id = t AND status = 'enabled'
   AND (not expired) AND (quota_limit < 0 OR used_quota + c <= quota_limit)``.

The table is partitioned by month on ``created_at``, so its unique key is
``(request_id, created_at)`` and cannot by itself stop a client's retry after a
month boundary from being charged again: steps 1 and 2 do (docs/operations.md).
A charge that meets a month without a partition creates it and charges again.

Each UPDATE is a conditional single-row update: PostgreSQL re-checks the
condition on the latest row version after waiting for its lock, so concurrent
calls can never overdraw, and a disabled owner or key is refused by the charge
itself whatever a node's cache believes. When either matches no row the
function raises (``open_api_refuse``: SQLSTATE LU402 wallet/owner, LU429
token), which rolls all three writes back: the wallet and the token always move
together. Rows are locked only for the call and its commit.

When the request_id is already there, the row says who put it there: the same
``attempt`` nonce means this very call committed before its reply was lost (a
retry after a cut connection), so the charge is this call's own; another attempt
with the same fingerprint is a replay (``replayed=True``, with the stored outcome
once the first call finished); anything else is a reused key
(``IdempotencyKeyReused``). Transient failures (serialization, deadlock, lost
connection) are retried with the same request_id and attempt, and surface as
DeductionFailed when retries run out. Nothing is ever swallowed.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import luser_db
from app.open_api.errors import (
    DeductionFailed,
    IdempotencyKeyReused,
    InsufficientBalance,
    OpenTokenDisabled,
    OpenTokenExpired,
    OwnerDisabled,
    QuotaExceeded,
)
from app.open_api.partitions import DEDUCTIONS, ensure_current_partition
from luser_common import ValidationError
from luser_common.http import EnvelopeResponse
from luser_db import CommitUncertain, Db, full_jitter, is_retryable, sqlstate, transaction

__all__ = ["CallRecord", "Deduction", "Outcome", "deduct_quota", "refund_quota", "store_outcome"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Between retries of a keyed write: full jitter, 10 ms doubling, at most 200 ms.
_BACKOFF = full_jitter(base=0.01, cap=0.2)


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What the deduction row remembers about the call it charges.

    ``fingerprint`` binds an idempotency key to one request (see ``fingerprint``
    in ``app.open_api.idempotency``); ``keyed`` says the caller sent an
    Idempotency-Key, so the call's outcome is stored for replays. ``ability``,
    ``path`` and ``log_request_id`` rebuild the call's log row after a hard kill.
    """

    fingerprint: bytes | None = None
    keyed: bool = False
    ability: str | None = None
    path: str | None = None
    log_request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The stored outcome of a finished keyed call: its data, or its error."""

    status: int
    code: str | None = None  # None: success, ``body`` is the response data
    message: str | None = None
    body: Any = None


@dataclass(frozen=True, slots=True)
class Deduction:
    """The outcome of a deduction.

    ``replayed=False``: this call attempt owns the charge of ``amount`` (a fresh
    charge, or its own earlier commit whose reply was lost). ``replayed=True``:
    another attempt of the same request charged; ``outcome`` is what it answered,
    or None while it is still running.
    """

    request_id: str
    user_id: int
    token_id: int
    amount: int
    replayed: bool
    balance_after: int | None = None
    used_quota_after: int | None = None
    outcome: Outcome | None = None


async def deduct_quota(
    user_id: int,
    token_id: int,
    amount: int,
    request_id: str,
    *,
    retries: int = 5,
    synchronous_commit: bool = True,
    attempt: str | None = None,
    call: CallRecord | None = None,
) -> Deduction:
    """Charge ``amount`` nano-units once per ``request_id``; raise when refused or failing.

    ``attempt`` identifies this call attempt (a fresh nonce by default): every
    retry below reuses it, so a commit whose reply was lost is recognised as ours.
    """
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise ValidationError("扣费金额必须是非负整数 (纳单位)", field="amount")
    if not request_id or len(request_id) > 128:
        raise ValidationError("request_id 必须是 1-128 个字符", field="request_id")
    nonce, record = attempt or uuid.uuid4().hex, call or CallRecord()
    sync = "on" if synchronous_commit else "off"
    return await _retrying(
        lambda: _deduct_once(user_id, token_id, amount, request_id, sync, nonce, record),
        request_id,
        None,
        retries,
    )


# The charge, one call of open_api_charge() (migration 0046): one round trip, one
# transaction. Replays get the existing row back from the same call.
_CHARGE_SQL = "SELECT * FROM open_api_charge($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"


async def _deduct_once(
    user_id: int,
    token_id: int,
    amount: int,
    request_id: str,
    sync: str,
    attempt: str,
    call: CallRecord,
) -> Deduction:
    try:
        return await _charge(user_id, token_id, amount, request_id, sync, attempt, call)
    except Exception as exc:
        # No partition for the database's current month (the amount is checked above,
        # so the CHECK on it cannot be the violated one): create it, charge again.
        if sqlstate(exc) != "23514":
            raise
        log.warning("open API %s: no deduction partition for this month", request_id)
    await ensure_current_partition(DEDUCTIONS)
    return await _charge(user_id, token_id, amount, request_id, sync, attempt, call)


async def _charge(
    user_id: int,
    token_id: int,
    amount: int,
    request_id: str,
    sync: str,
    attempt: str,
    call: CallRecord,
) -> Deduction:
    # One statement = one implicit transaction and one round trip: the wallet and
    # token rows stay locked only for this statement and its commit.
    async with luser_db.connection(stateless=True) as conn:  # set_config(..., true) is local
        try:
            row = await conn.fetchrow(
                _CHARGE_SQL,
                request_id,
                user_id,
                token_id,
                amount,
                sync,
                attempt,
                call.fingerprint,
                call.keyed,
                call.ability,
                call.path,
                call.log_request_id,
            )
        except Exception as exc:
            state = sqlstate(exc)  # open_api_refuse()'s custom SQLSTATE, kept by luser_db
            if state == "LU402":
                raise await _wallet_refusal(conn, user_id) from exc
            if state == "LU429":
                raise await _token_refusal(conn, token_id, user_id) from exc
            raise
    assert row is not None
    if row["outcome"] == "exists":
        return _existing(row, user_id, token_id, amount, request_id, attempt, call)
    return Deduction(
        request_id, user_id, token_id, amount, False, row["balance"], row["used_quota"]
    )


def _existing(
    row: Mapping[str, Any],
    user_id: int,
    token_id: int,
    amount: int,
    request_id: str,
    attempt: str,
    call: CallRecord,
) -> Deduction:
    """The request_id was charged before: by this attempt, by a replayed one, or misused."""
    if row["attempt"] == attempt:
        # Our own commit, its reply lost on the way: the charge is ours, at its real cost.
        return Deduction(request_id, user_id, token_id, row["amount"], False)
    same_request = (
        row["fingerprint"] == call.fingerprint
        if row["fingerprint"] is not None or call.fingerprint is not None
        else row["amount"] == amount
    )
    if (row["user_id"], row["token_id"]) != (user_id, token_id) or not same_request:
        raise IdempotencyKeyReused(details={"request_id": request_id})
    outcome = None
    if row["outcome_status"] is not None:
        body = row["outcome_body"]
        outcome = Outcome(
            row["outcome_status"],
            row["outcome_code"],
            row["outcome_message"],
            None if body is None else json.loads(body),
        )
    return Deduction(request_id, user_id, token_id, row["amount"], True, outcome=outcome)


async def _wallet_refusal(conn: luser_db.Connection, user_id: int) -> Exception:
    # Only on the refusal path: an empty wallet, or an owner disabled since the cache.
    status = await conn.fetchval("SELECT status FROM users WHERE id = $1", user_id)
    if status != "active":
        return OwnerDisabled()
    return InsufficientBalance()


async def _token_refusal(conn: luser_db.Connection, token_id: int, user_id: int) -> Exception:
    # Only on the refusal path: say precisely why the token update matched nothing.
    row = await conn.fetchrow(
        "SELECT status, expired_time <= now() AS expired FROM api_tokens "
        "WHERE id = $1 AND user_id = $2",
        token_id,
        user_id,
    )
    if row is None or row["status"] != "enabled":
        return OpenTokenDisabled()
    if row["expired"]:
        return OpenTokenExpired()
    return QuotaExceeded()


_STORE_SQL = """
UPDATE quota_deductions
SET outcome_status = $3, outcome_code = $4, outcome_message = $5, outcome_body = $6::json,
    finished_at = now()
WHERE request_id = $1 AND attempt = $2 AND finished_at IS NULL
"""


async def store_outcome(request_id: str, attempt: str, outcome: Outcome) -> None:
    """Record a keyed call's answer so that replays return it without new work."""
    body = None if outcome.body is None else _json_text(outcome.body)
    await _retrying(
        lambda: _execute(
            _STORE_SQL,
            request_id,
            attempt,
            outcome.status,
            outcome.code,
            outcome.message,
            body,
        ),
        request_id,
        "保存请求结果暂时失败",
    )


async def _execute(sql: str, *args: Any) -> None:
    await Db.execute(sql, *args)


def _json_text(data: Any) -> str:
    # Exactly the JSON the caller received (datetimes, Decimals as the envelope writes them).
    return bytes(EnvelopeResponse(data).body).decode()


async def refund_quota(
    request_id: str, *, retries: int = 5, outcome: Outcome | None = None
) -> bool:
    """Undo a deduction once (e.g. every upstream failed); False if nothing to refund.

    ``outcome`` (a keyed call's failure) is stored in the same transaction, so a
    replay of a refunded call answers that failure and never runs for free.
    """
    return await _retrying(
        lambda: _refund_once(request_id, outcome), request_id, "退款暂时失败", retries
    )


async def _retrying(
    fn: Callable[[], Awaitable[T]], request_id: str, failure: str | None, retries: int = 5
) -> T:
    """``fn()``, retried on transient errors and on a commit whose outcome is unknown
    (safe: every write here is keyed by ``request_id`` and its attempt nonce, the
    refund by ``refunded_at IS NULL``); DeductionFailed(``failure``) when they persist."""
    try:
        return await luser_db.retry(fn, attempts=retries + 1, backoff=_BACKOFF, idempotent=True)
    except Exception as exc:
        if isinstance(exc, CommitUncertain) or is_retryable(exc):
            log.warning("open API %s: gave up after %d retries: %r", request_id, retries, exc)
            raise DeductionFailed(failure, details={"request_id": request_id}) from exc
        raise


_REFUND_SQL = """
UPDATE quota_deductions
SET refunded_at = now(),
    outcome_status = coalesce($2, outcome_status), outcome_code = coalesce($3, outcome_code),
    outcome_message = coalesce($4, outcome_message),
    finished_at = CASE WHEN $2::integer IS NULL THEN finished_at ELSE now() END
WHERE request_id = $1 AND refunded_at IS NULL
RETURNING user_id, token_id, amount
"""


async def _refund_once(request_id: str, outcome: Outcome | None) -> bool:
    async with transaction():
        refunded = await Db.find(
            _REFUND_SQL,
            request_id,
            outcome.status if outcome else None,
            outcome.code if outcome else None,
            outcome.message if outcome else None,
        )
        if not refunded:
            return False
        row = refunded[0]
        await Db.execute(
            "UPDATE users SET balance = balance + $2 WHERE id = $1", row["user_id"], row["amount"]
        )
        await Db.execute(
            "UPDATE api_tokens SET used_quota = greatest(used_quota - $2, 0) WHERE id = $1",
            row["token_id"],
            row["amount"],
        )
    return True

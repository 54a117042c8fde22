"""Charging a call: wallet debit + token quota + idempotency record, all or nothing.

One SQL statement (``_DEDUCT_SQL``), hence one implicit transaction and one round
trip, made of three data-modifying CTEs pulled in a fixed order:

1. ``INSERT INTO quota_deductions (request_id, ...) ON CONFLICT DO NOTHING`` -- a
   replay of the same request_id blocks here until the first attempt commits or
   rolls back, then inserts nothing: the first outcome is returned unchanged;
2. ``UPDATE users SET balance = balance - c WHERE id = u AND balance >= c``;
3. ``UPDATE api_tokens SET used_quota = used_quota + c WHERE id = t AND
   status = 'enabled' AND (quota_limit < 0 OR used_quota + c <= quota_limit)``.

Each UPDATE is a conditional single-row update: PostgreSQL re-checks the
condition on the latest row version after waiting for its lock, so concurrent
calls can never overdraw. When either matches no row the statement raises
(``open_api_refuse``: SQLSTATE LU402 wallet, LU429 token), which rolls all three
writes back: the wallet and the token always move together. Rows are locked
only for the statement and its commit. Transient failures (serialization,
deadlock, lost connection) are retried with the same request_id -- safe because
of step 1 -- and surface as DeductionFailed when retries run out. Nothing is
ever swallowed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

import asyncpg

from luser_common import Conflict, DatabaseUnavailable, ValidationError

from . import _db
from .errors import DeductionFailed, InsufficientBalance, OpenTokenDisabled, QuotaExceeded

__all__ = ["Deduction", "deduct_quota", "refund_quota"]

log = logging.getLogger(__name__)

_TRANSIENT = (
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    ConnectionError,
    OSError,
    DatabaseUnavailable,  # no connection could be had (server full or down)
)


@dataclass(frozen=True, slots=True)
class Deduction:
    """The outcome of a deduction; ``replayed`` when the request_id was seen before."""

    request_id: str
    user_id: int
    token_id: int
    amount: int
    replayed: bool
    balance_after: int | None = None
    used_quota_after: int | None = None


async def deduct_quota(
    user_id: int,
    token_id: int,
    amount: int,
    request_id: str,
    *,
    retries: int = 5,
    synchronous_commit: bool = True,
) -> Deduction:
    """Charge ``amount`` nano-units once per ``request_id``; raise when refused or failing."""
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise ValidationError("扣费金额必须是非负整数 (纳单位)", field="amount")
    if not request_id or len(request_id) > 128:
        raise ValidationError("request_id 必须是 1-128 个字符", field="request_id")
    attempt = 0
    while True:
        try:
            return await _deduct_once(
                user_id, token_id, amount, request_id, "on" if synchronous_commit else "off"
            )
        except _TRANSIENT as exc:
            attempt += 1
            if attempt > retries:
                raise DeductionFailed(details={"request_id": request_id}) from exc
            log.warning("deduction %s: transient %r, retry %d", request_id, exc, attempt)
            await asyncio.sleep(min(0.2, 0.005 * 2**attempt) * random.random())


_DEDUCT_SQL = """
WITH ins AS (
    INSERT INTO quota_deductions (request_id, user_id, token_id, amount)
    VALUES ($1, $2, $3, $4) ON CONFLICT (request_id) DO NOTHING RETURNING 1
), wallet AS (
    UPDATE users SET balance = balance - $4
    WHERE id = $2 AND balance >= $4 AND EXISTS (SELECT 1 FROM ins)
    RETURNING balance
), token AS (
    UPDATE api_tokens SET used_quota = used_quota + $4
    WHERE id = $3 AND user_id = $2 AND status = 'enabled'
      AND (quota_limit < 0 OR used_quota + $4 <= quota_limit) AND EXISTS (SELECT 1 FROM ins)
    RETURNING used_quota
)
SELECT CASE
           WHEN NOT EXISTS (SELECT 1 FROM ins) THEN 'replayed'
           WHEN NOT EXISTS (SELECT 1 FROM wallet) THEN open_api_refuse('LU402')
           WHEN NOT EXISTS (SELECT 1 FROM token) THEN open_api_refuse('LU429')
           ELSE 'charged'
       END AS outcome,
       set_config('synchronous_commit', $5, true) AS synchronous_commit,
       (SELECT balance FROM wallet) AS balance,
       (SELECT used_quota FROM token) AS used_quota
"""


async def _deduct_once(
    user_id: int, token_id: int, amount: int, request_id: str, sync: str
) -> Deduction:
    # One statement = one implicit transaction and one round trip: the wallet and
    # token rows stay locked only for this statement and its commit.
    async with _db.connection(stateless=True) as conn:  # set_config(..., true) is local
        try:
            row = await conn.fetchrow(_DEDUCT_SQL, request_id, user_id, token_id, amount, sync)
        except asyncpg.PostgresError as exc:
            if exc.sqlstate == "LU402":
                raise InsufficientBalance() from exc
            if exc.sqlstate == "LU429":
                raise await _token_refusal(conn, token_id, user_id) from exc
            raise
        assert row is not None
        if row["outcome"] == "replayed":
            return await _replayed(conn, user_id, token_id, amount, request_id)
    return Deduction(
        request_id, user_id, token_id, amount, False, row["balance"], row["used_quota"]
    )


async def _replayed(
    conn: _db.Conn, user_id: int, token_id: int, amount: int, request_id: str
) -> Deduction:
    row = await conn.fetchrow(
        "SELECT user_id, token_id, amount FROM quota_deductions WHERE request_id = $1", request_id
    )
    if row is None:  # pragma: no cover - the row existed a statement ago and is never deleted live
        raise Conflict("扣费记录状态异常, 请重试", retryable=True)
    if (row["user_id"], row["token_id"], row["amount"]) != (user_id, token_id, amount):
        raise Conflict("request_id 已用于另一笔扣费", details={"request_id": request_id})
    return Deduction(request_id, user_id, token_id, amount, True)


async def _token_refusal(conn: _db.Conn, token_id: int, user_id: int) -> Exception:
    # Only on the refusal path: say precisely why the token update matched nothing.
    status = await conn.fetchval(
        "SELECT status FROM api_tokens WHERE id = $1 AND user_id = $2", token_id, user_id
    )
    if status is None or status != "enabled":
        return OpenTokenDisabled()
    return QuotaExceeded()


async def refund_quota(request_id: str, *, retries: int = 5) -> bool:
    """Undo a deduction once (e.g. every upstream failed); False if nothing to refund."""
    attempt = 0
    while True:
        try:
            return await _refund_once(request_id)
        except _TRANSIENT as exc:
            attempt += 1
            if attempt > retries:
                raise DeductionFailed("退款暂时失败", details={"request_id": request_id}) from exc
            await asyncio.sleep(min(0.2, 0.005 * 2**attempt) * random.random())


async def _refund_once(request_id: str) -> bool:
    async with _db.connection(stateless=True) as conn, conn.transaction():
        row = await conn.fetchrow(
            "UPDATE quota_deductions SET refunded_at = now() "
            "WHERE request_id = $1 AND refunded_at IS NULL RETURNING user_id, token_id, amount",
            request_id,
        )
        if row is None:
            return False
        await conn.execute(
            "UPDATE users SET balance = balance + $2 WHERE id = $1", row["user_id"], row["amount"]
        )
        await conn.execute(
            "UPDATE api_tokens SET used_quota = greatest(used_quota - $2, 0) WHERE id = $1",
            row["token_id"],
            row["amount"],
        )
    return True

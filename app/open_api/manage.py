"""Management of a user's account in the open API: tokens (owner-scoped) and the wallet.

The routing configuration (channels, abilities, prices, groups) is in ``routing_config.py``.

Every statement goes through luser_db (the models of ``models.py``, their query
builder, ``Db``), so an operation called inside ``luser_db.transaction()`` joins
it, and every database error arrives here as a luser_common ``AppError``. The
few constraint violations that have a domain meaning (a missing owner, a taken
reference taken twice) are renamed by constraint (``manage_errors.constraint_errors``).

Callers (the self-service and admin routes) refresh this node's caches after a
change so that revocation is immediate; other nodes hear about it through the
``open_api_tokens`` / ``open_api_config`` notifications sent by database triggers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.open_api.access import parse_networks
from app.open_api.errors import InsufficientBalance
from app.open_api.manage_errors import MAX_BALANCE, BalanceOverflow, constraint_errors
from app.open_api.models import (
    AbilityPrice,
    ApiToken,
    WalletEntry,
)
from app.open_api.tokens import generate_key, hash_key, key_hint
from luser_common import Conflict, NotFound, ValidationError, utc_now
from luser_db import Db, QueryBuilder, Record, transaction

__all__ = [
    "CreatedToken",
    "TokenSpec",
    "create_token",
    "delete_token",
    "get_token",
    "ledger",
    "list_tokens",
    "top_up",
    "update_token",
    "wallet",
]

_ABILITY_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_UNSET: Any = object()


# -- tokens ------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenSpec:
    """Settable token fields; ``_UNSET`` leaves a field unchanged on update."""

    name: str = _UNSET
    status: str = _UNSET
    quota_limit: int = _UNSET
    expired_time: datetime | None = _UNSET
    allowed_abilities: list[str] | None = _UNSET
    allowed_ips: list[str] | None = _UNSET

    def columns(self) -> dict[str, Any]:
        """Validated column values for the fields that were given."""
        out: dict[str, Any] = {}
        if self.name is not _UNSET:
            if not isinstance(self.name, str) or len(self.name) > 64:
                raise ValidationError("名称最多 64 个字符", field="name")
            out["name"] = self.name
        if self.status is not _UNSET:
            if self.status not in ("enabled", "disabled"):
                raise ValidationError("状态必须是 enabled 或 disabled", field="status")
            out["status"] = self.status
        if self.quota_limit is not _UNSET:
            if type(self.quota_limit) is not int or self.quota_limit < -1:
                raise ValidationError(
                    "额度必须是 >= -1 的整数 (纳单位, -1 表示不限)", field="quota_limit"
                )
            out["quota_limit"] = self.quota_limit
        if self.expired_time is not _UNSET:
            if self.expired_time is not None and self.expired_time.tzinfo is None:
                raise ValidationError("过期时间必须带时区", field="expired_time")
            out["expired_time"] = self.expired_time
        if self.allowed_abilities is not _UNSET:
            out["allowed_abilities"] = _abilities(self.allowed_abilities)
        if self.allowed_ips is not _UNSET:
            ips = self.allowed_ips
            out["allowed_ips"] = None if ips is None else [str(n) for n in parse_networks(ips)]
        return out


def _abilities(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    for value in values:
        if not isinstance(value, str) or not _ABILITY_RE.match(value):
            raise ValidationError(f"能力名称无效: {value}", field="allowed_abilities")
    return sorted(set(values))


async def _require_known_abilities(values: dict[str, Any]) -> None:
    # The billable abilities are the priced ones; a key limited to an unknown name
    # would silently be limited to nothing.
    wanted = values.get("allowed_abilities")
    if not wanted:
        return
    known = set(await AbilityPrice.query().where_in("ability", wanted).pluck("ability"))
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ValidationError(f"未知的能力: {', '.join(unknown)}", field="allowed_abilities")


@dataclass(frozen=True)
class CreatedToken:
    key: str  # the plaintext: shown once, never stored
    token: dict[str, Any] = field(default_factory=dict)
    key_hash: bytes = b""


async def create_token(user_id: int, spec: TokenSpec, *, pepper: bytes) -> CreatedToken:
    values = spec.columns()
    values.pop("status", None)
    expires = values.get("expired_time")
    if expires is not None and expires <= utc_now():
        raise ValidationError("过期时间必须晚于当前时间", field="expired_time")
    await _require_known_abilities(values)
    key = generate_key()
    digest = hash_key(key, pepper)
    token = ApiToken(user_id=user_id, key_hash=digest, key_hint=key_hint(key), **values)
    with constraint_errors(api_tokens_user_id_fkey=NotFound("用户不存在", field="user_id")):
        await token.save()
    return CreatedToken(key, token.public(), digest)


def _tokens(token_id: int, user_id: int | None) -> QueryBuilder[ApiToken]:
    """The token ``token_id``, scoped to its owner when ``user_id`` is given."""
    query = ApiToken.query().where("id = ?", token_id)
    return query if user_id is None else query.where("user_id = ?", user_id)


async def _token(token_id: int, user_id: int | None) -> ApiToken:
    token = await _tokens(token_id, user_id).first()
    if token is None:
        raise NotFound("令牌不存在")
    return token


async def get_token(token_id: int, user_id: int | None = None) -> dict[str, Any]:
    return (await _token(token_id, user_id)).public()


async def list_tokens(
    user_id: int | None, *, after_id: int = 0, limit: int = 50
) -> list[dict[str, Any]]:
    query = ApiToken.query().where("id > ?", after_id)
    if user_id is not None:
        query = query.where("user_id = ?", user_id)
    return [t.public() for t in await query.order_by("id").limit(limit).all()]


async def update_token(
    token_id: int, spec: TokenSpec, user_id: int | None = None
) -> dict[str, Any]:
    values = spec.columns()
    token = await _token(token_id, user_id)
    if not values:
        return token.public()
    await _require_known_abilities(values)
    for name, value in values.items():
        setattr(token, name, value)
    if not await token.update():
        raise NotFound("令牌不存在")  # deleted since it was read
    return token.public()


async def delete_token(token_id: int, user_id: int | None = None) -> None:
    if not await _tokens(token_id, user_id).delete():
        raise NotFound("令牌不存在")


# -- wallet ------------------------------------------------------------------------


def _user(user_id: int) -> QueryBuilder[Record]:
    return Db.query("users").select("balance").where("id = ?", user_id)


async def top_up(
    user_id: int,
    amount: int,
    *,
    reference: str | None = None,
    operator_id: int | None = None,
    note: str = "",
    kind: str = "topup",
) -> dict[str, Any]:
    """Credit (or, with kind='adjust', debit) a wallet and ledger it; idempotent per reference.

    The wallet row is locked first, so top-ups of one wallet (and retries of one
    reference) run one after another; inside an enclosing ``transaction()`` this
    is a savepoint of it.
    """
    if type(amount) is not int or amount == 0 or (kind == "topup" and amount < 0):
        raise ValidationError("金额必须是非零整数 (纳单位); 充值必须为正", field="amount")
    async with transaction():
        owner = await _user(user_id).for_update().first()
        if owner is None:
            raise NotFound("用户不存在", field="user_id")
        if reference is not None:
            first = await WalletEntry.query().where("reference = ?", reference).first()
            if first is not None:
                return _replayed(first, user_id, amount)
        balance = owner["balance"] + amount
        if balance < 0:
            raise InsufficientBalance()
        if balance > MAX_BALANCE:
            raise BalanceOverflow(field="amount")
        entry = WalletEntry(
            user_id=user_id,
            amount=amount,
            balance_after=balance,
            kind=kind,
            reference=reference,
            operator_id=operator_id,
            note=note,
        )
        # Another wallet's top-up may have taken the reference since the check above.
        taken = _reference_taken(reference)
        with constraint_errors(wallet_ledger_reference_key=taken):
            await entry.save()
        await _user(user_id).update(balance=balance)
    return {**entry.to_dict(), "replayed": False}


def _reference_taken(reference: str | None) -> Conflict:
    return Conflict(
        "该充值流水号已用于另一笔充值", field="reference", details={"reference": reference}
    )


def _replayed(first: WalletEntry, user_id: int, amount: int) -> dict[str, Any]:
    if first.user_id != user_id or first.amount != amount:
        raise _reference_taken(first.reference)
    return {**first.to_dict(), "replayed": True}


async def ledger(
    user_id: int, *, before_id: int | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """A wallet's top-ups and adjustments, newest first."""
    query = WalletEntry.query().where("user_id = ?", user_id)
    if before_id is not None:
        query = query.where("id < ?", before_id)
    return [e.to_dict() for e in await query.order_by("id desc").limit(limit).all()]


async def wallet(user_id: int) -> dict[str, Any]:
    row = await _user(user_id).first()
    if row is None:
        raise NotFound("用户不存在")
    return {"user_id": user_id, "balance": row["balance"]}

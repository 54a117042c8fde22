"""Management operations: tokens (owner-scoped), wallet top-ups, channels, abilities, groups.

These are plain database operations; callers (routes.py) refresh caches after
a change so revocation is immediate on this node. Other nodes hear about it
through the ``open_api_tokens`` / ``open_api_config`` notifications.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from luser_common import BusinessError, Conflict, DuplicateError, NotFound, ValidationError

from . import _db
from .access import parse_networks
from .errors import InsufficientBalance
from .models import AbilityPrice, AbilityRoute, ApiToken, Channel, UserGroup, WalletEntry
from .money import parse_ratio
from .secretbox import SecretBox
from .tokens import generate_key, hash_key, key_hint

__all__ = [
    "CreatedToken",
    "TokenSpec",
    "create_token",
    "delete_token",
    "get_token",
    "list_tokens",
    "top_up",
    "update_token",
]

CREDENTIALS_AAD = "open_api.channels.credentials"
_ABILITY_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_UNSET: Any = object()

_TOKEN_COLUMNS = (
    "id, user_id, name, key_hint, status, quota_limit, used_quota, expired_time, "
    "accessed_time, allowed_abilities, allowed_ips, created_at, updated_at"
)


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


def _dict(row: asyncpg.Record | None) -> dict[str, Any]:
    assert row is not None  # INSERT/UPSERT ... RETURNING always returns the row
    return dict(row)


def _abilities(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    for value in values:
        if not isinstance(value, str) or not _ABILITY_RE.match(value):
            raise ValidationError(f"能力名称无效: {value}", field="allowed_abilities")
    return sorted(set(values))


@dataclass(frozen=True)
class CreatedToken:
    key: str  # the plaintext: shown once, never stored
    token: dict[str, Any] = field(default_factory=dict)
    key_hash: bytes = b""


async def create_token(user_id: int, spec: TokenSpec, *, pepper: bytes) -> CreatedToken:
    values = spec.columns()
    values.pop("status", None)
    key = generate_key()
    digest = hash_key(key, pepper)
    values.update(user_id=user_id, key_hash=digest, key_hint=key_hint(key))
    names = list(values)
    placeholders = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    sql = (
        f"INSERT INTO api_tokens ({', '.join(names)}) VALUES ({placeholders}) "
        f"RETURNING {_TOKEN_COLUMNS}"
    )
    async with _db.connection() as conn:
        try:
            row = await conn.fetchrow(sql, *values.values())
        except asyncpg.ForeignKeyViolationError as exc:
            raise NotFound("用户不存在") from exc
    return CreatedToken(key, _dict(row), digest)


def _scope(user_id: int | None, args: list[Any]) -> str:
    if user_id is None:
        return ""
    args.append(user_id)
    return f" AND user_id = ${len(args)}"


async def get_token(token_id: int, user_id: int | None = None) -> dict[str, Any]:
    query = ApiToken.query().where("id = ?", token_id)
    if user_id is not None:
        query = query.where("user_id = ?", user_id)
    token = await query.first()
    if token is None:
        raise NotFound("令牌不存在")
    return token.public()


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
    if not values:
        return await get_token(token_id, user_id)
    args: list[Any] = list(values.values())
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(values, start=1))
    args.append(token_id)
    sql = (
        f"UPDATE api_tokens SET {sets}, updated_at = now() WHERE id = ${len(args)}"
        f"{_scope(user_id, args)} RETURNING {_TOKEN_COLUMNS}"
    )
    async with _db.connection() as conn:
        row = await conn.fetchrow(sql, *args)
    if row is None:
        raise NotFound("令牌不存在")
    return dict(row)


async def delete_token(token_id: int, user_id: int | None = None) -> None:
    args: list[Any] = [token_id]
    async with _db.connection() as conn:
        status = await conn.execute(
            f"DELETE FROM api_tokens WHERE id = $1{_scope(user_id, args)}", *args
        )
    if status.endswith(" 0"):
        raise NotFound("令牌不存在")


# -- wallet ------------------------------------------------------------------------


async def top_up(
    user_id: int,
    amount: int,
    *,
    reference: str | None = None,
    operator_id: int | None = None,
    note: str = "",
    kind: str = "topup",
) -> dict[str, Any]:
    """Credit (or, with kind='adjust', debit) a wallet and ledger it; idempotent per reference."""
    if type(amount) is not int or amount == 0 or (kind == "topup" and amount < 0):
        raise ValidationError("金额必须是非零整数 (纳单位); 充值必须为正", field="amount")
    async with _db.connection() as conn, conn.transaction():
        ledger_id = await conn.fetchval(
            "INSERT INTO wallet_ledger (user_id, amount, balance_after, kind, reference, "
            "operator_id, note) VALUES ($1, $2, 0, $3, $4, $5, $6) "
            "ON CONFLICT (reference) DO NOTHING RETURNING id",
            user_id,
            amount,
            kind,
            reference,
            operator_id,
            note,
        )
        if ledger_id is None:
            row = await conn.fetchrow("SELECT * FROM wallet_ledger WHERE reference = $1", reference)
            first = _dict(row)
            if first["user_id"] != user_id or first["amount"] != amount:
                raise Conflict("该充值流水号已用于另一笔充值", details={"reference": reference})
            return {**first, "replayed": True}
        balance = await conn.fetchval(
            "UPDATE users SET balance = balance + $2 WHERE id = $1 AND balance + $2 >= 0 "
            "RETURNING balance",
            user_id,
            amount,
        )
        if balance is None:
            exists = await conn.fetchval("SELECT 1 FROM users WHERE id = $1", user_id)
            raise NotFound("用户不存在") if not exists else InsufficientBalance()
        row = await conn.fetchrow(
            "UPDATE wallet_ledger SET balance_after = $2 WHERE id = $1 RETURNING *",
            ledger_id,
            balance,
        )
    return {**_dict(row), "replayed": False}


async def ledger(
    user_id: int, *, before_id: int | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """A wallet's top-ups and adjustments, newest first."""
    query = WalletEntry.query().where("user_id = ?", user_id)
    if before_id is not None:
        query = query.where("id < ?", before_id)
    return [e.to_dict() for e in await query.order_by("id desc").limit(limit).all()]


async def wallet(user_id: int) -> dict[str, Any]:
    async with _db.connection() as conn:
        balance = await conn.fetchval("SELECT balance FROM users WHERE id = $1", user_id)
    if balance is None:
        raise NotFound("用户不存在")
    return {"user_id": user_id, "balance": balance}


# -- channels, abilities, prices, groups -------------------------------------------

_CHANNEL_COLUMNS = (
    "id, name, provider, base_url, status, priority, weight, "
    "credentials <> '' AS has_credentials, created_at, updated_at"
)


def _check_channel(values: dict[str, Any]) -> None:
    if "provider" in values and values["provider"] not in ("tencent", "aliyun"):
        raise ValidationError("provider 必须是 tencent 或 aliyun", field="provider")
    if "status" in values and values["status"] not in ("enabled", "disabled"):
        raise ValidationError("状态必须是 enabled 或 disabled", field="status")
    if "weight" in values and (type(values["weight"]) is not int or values["weight"] < 0):
        raise ValidationError("权重必须是非负整数", field="weight")
    if "priority" in values and type(values["priority"]) is not int:
        raise ValidationError("优先级必须是整数", field="priority")
    if "base_url" in values:
        url = values["base_url"]
        if url and not re.match(r"^https?://[^\s]+$", str(url)):
            raise ValidationError("base_url 必须是 http(s) 地址", field="base_url")


_CHANNEL_FIELDS = ("name", "provider", "base_url", "status", "priority", "weight")


async def save_channel(
    data: dict[str, Any], box: SecretBox, channel_id: int | None = None
) -> dict[str, Any]:
    """Create (channel_id None) or update a channel; credentials are sealed before storage."""
    values = {k: data[k] for k in _CHANNEL_FIELDS if k in data}
    _check_channel(values)
    if "credentials" in data:
        creds = data["credentials"]
        if not isinstance(creds, dict):
            raise ValidationError("credentials 必须是对象", field="credentials")
        values["credentials"] = box.seal(creds, CREDENTIALS_AAD)
    if channel_id is None and not {"name", "provider"} <= values.keys():
        raise ValidationError("需要 name 和 provider", field="name")
    if not values:
        raise ValidationError("没有要修改的字段")
    names = list(values)
    args = list(values.values())
    if channel_id is None:
        ph = ", ".join(f"${i}" for i in range(1, len(args) + 1))
        sql = (
            f"INSERT INTO channels ({', '.join(names)}) VALUES ({ph}) RETURNING {_CHANNEL_COLUMNS}"
        )
    else:
        sets = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, start=1))
        args.append(channel_id)
        sql = (
            f"UPDATE channels SET {sets}, updated_at = now() WHERE id = ${len(args)} "
            f"RETURNING {_CHANNEL_COLUMNS}"
        )
    async with _db.connection() as conn:
        try:
            row = await conn.fetchrow(sql, *args)
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateError("通道名称已存在") from exc
    if row is None:
        raise NotFound("通道不存在")
    return dict(row)


async def list_channels() -> list[dict[str, Any]]:
    return [c.public() for c in await Channel.query().order_by("id").all()]


async def delete_channel(channel_id: int) -> None:
    async with _db.connection() as conn:
        status = await conn.execute("DELETE FROM channels WHERE id = $1", channel_id)
    if status.endswith(" 0"):
        raise NotFound("通道不存在")


async def save_ability(
    group: str,
    ability: str,
    channel_id: int,
    *,
    enabled: bool = True,
    priority: int | None = None,
    weight: int | None = None,
) -> dict[str, Any]:
    if weight is not None and (type(weight) is not int or weight < 0):
        raise ValidationError("权重必须是非负整数", field="weight")
    async with _db.connection() as conn:
        try:
            row = await conn.fetchrow(
                "INSERT INTO abilities "
                "(group_name, ability, channel_id, enabled, priority, weight) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (group_name, ability, channel_id) "
                "DO UPDATE SET enabled = EXCLUDED.enabled, priority = EXCLUDED.priority, "
                "weight = EXCLUDED.weight RETURNING *",
                group,
                ability,
                channel_id,
                enabled,
                priority,
                weight,
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise BusinessError("分组、能力或通道不存在") from exc
    return _dict(row)


async def list_abilities() -> list[dict[str, Any]]:
    routes = await AbilityRoute.query().order_by("group_name", "ability", "id").all()
    return [r.to_dict() for r in routes]


async def delete_ability(ability_id: int) -> None:
    async with _db.connection() as conn:
        status = await conn.execute("DELETE FROM abilities WHERE id = $1", ability_id)
    if status.endswith(" 0"):
        raise NotFound("能力路由不存在")


async def set_price(ability: str, price: int, description: str = "") -> dict[str, Any]:
    if not _ABILITY_RE.match(ability):
        raise ValidationError("能力名称无效", field="ability")
    if type(price) is not int or price < 0:
        raise ValidationError("价格必须是非负整数 (纳单位)", field="price")
    async with _db.connection() as conn:
        row = await conn.fetchrow(
            "INSERT INTO ability_prices (ability, price, description) VALUES ($1, $2, $3) "
            "ON CONFLICT (ability) DO UPDATE SET price = EXCLUDED.price, "
            "description = EXCLUDED.description, updated_at = now() RETURNING *",
            ability,
            price,
            description,
        )
    return _dict(row)


async def list_prices() -> list[dict[str, Any]]:
    return [p.to_dict() for p in await AbilityPrice.query().order_by("ability").all()]


async def save_group(name: str, ratio: object, description: str = "") -> dict[str, Any]:
    value = parse_ratio(ratio)
    async with _db.connection() as conn:
        try:
            row = await conn.fetchrow(
                "INSERT INTO user_groups (name, ratio, description) VALUES ($1, $2, $3) "
                "ON CONFLICT (name) DO UPDATE SET ratio = EXCLUDED.ratio, "
                "description = EXCLUDED.description, updated_at = now() RETURNING *",
                name,
                value,
                description,
            )
        except asyncpg.CheckViolationError as exc:
            raise ValidationError("分组名称无效", field="name") from exc
    return _dict(row)


async def list_groups() -> list[dict[str, Any]]:
    return [g.to_dict() for g in await UserGroup.query().order_by("name").all()]


async def set_member(user_id: int, group: str) -> None:
    async with _db.connection() as conn:
        try:
            if group == "default":
                await conn.execute("DELETE FROM group_members WHERE user_id = $1", user_id)
            else:
                await conn.execute(
                    "INSERT INTO group_members (user_id, group_name) VALUES ($1, $2) "
                    "ON CONFLICT (user_id) DO UPDATE SET group_name = EXCLUDED.group_name",
                    user_id,
                    group,
                )
        except asyncpg.ForeignKeyViolationError as exc:
            raise BusinessError("用户或分组不存在") from exc

"""The open API tables as luser_db models (management reads; the hot path uses SQL).

Writes that need ``ON CONFLICT``, conditional updates or hashing stay in
``manage.py``/``routing_config.py``/``quota.py`` as explicit SQL; these models serve
listings and lookups through the ORM like the rest of the app.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from luser_db import Field, Model

__all__ = [
    "AbilityPrice",
    "AbilityRoute",
    "ApiToken",
    "Channel",
    "GroupMember",
    "RouterLog",
    "UserGroup",
    "WalletEntry",
]


def _pk() -> Any:
    # Typed Any so the annotation (int/str) stays the column's type for mypy.
    return Field(primary_key=True)


class ApiToken(Model, table="api_tokens"):
    id: int = _pk()
    user_id: int = 0
    name: str = ""
    key_hash: bytes = b""
    key_hint: str = ""
    status: str = "enabled"
    quota_limit: int = -1
    used_quota: int = 0
    expired_time: datetime | None = None
    accessed_time: datetime | None = None
    allowed_abilities: list[str] | None = None
    allowed_ips: list[str] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def public(self) -> dict[str, object]:
        """Everything but the hash."""
        return {
            name: getattr(self, name)
            for name in (
                "id",
                "user_id",
                "name",
                "key_hint",
                "status",
                "quota_limit",
                "used_quota",
                "expired_time",
                "accessed_time",
                "allowed_abilities",
                "allowed_ips",
                "created_at",
                "updated_at",
            )
        }


class Channel(Model, table="channels"):
    id: int = _pk()
    name: str = ""
    provider: str = "tencent"
    credentials: str = ""
    base_url: str = ""
    status: str = "enabled"
    priority: int = 0
    weight: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def public(self) -> dict[str, object]:
        """Everything but the sealed credentials."""
        return {
            "id": self.id,
            "name": self.name,
            "provider": self.provider,
            "base_url": self.base_url,
            "status": self.status,
            "priority": self.priority,
            "weight": self.weight,
            "has_credentials": bool(self.credentials),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class AbilityPrice(Model, table="ability_prices"):
    ability: str = _pk()
    price: int = 0
    description: str = ""
    updated_at: datetime | None = None


class AbilityRoute(Model, table="abilities"):
    id: int = _pk()
    group_name: str = "default"
    ability: str = ""
    channel_id: int = 0
    enabled: bool = True
    priority: int | None = None
    weight: int | None = None
    created_at: datetime | None = None


class UserGroup(Model, table="user_groups"):
    name: str = _pk()
    ratio: Decimal = Decimal(1)
    description: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None


class GroupMember(Model, table="group_members"):
    user_id: int = _pk()
    group_name: str = "default"
    created_at: datetime | None = None


class WalletEntry(Model, table="wallet_ledger"):
    id: int = _pk()
    user_id: int = 0
    amount: int = 0
    balance_after: int = 0
    kind: str = "topup"
    reference: str | None = None
    operator_id: int | None = None
    note: str = ""
    created_at: datetime | None = None


class RouterLog(Model, table="router_logs"):
    """One call's log row (written in COPY batches by ``logs.LogWriter``; read here)."""

    # (user_id, created_at, id): the partitioned table's key, led by the Citus shard key
    # (migration 0045, docs/operations.md).
    user_id: int = _pk()
    created_at: datetime = _pk()
    id: int = _pk()
    request_id: str = ""
    token_id: int | None = None
    path: str = ""
    ability: str = ""
    channel_id: int | None = None
    failed_channel_ids: list[int] | None = None
    status_code: int = 0
    error_code: str | None = None
    latency_ms: int = 0
    units: int = 1
    cost: int = 0
    client_ip: str | None = None
    deduction_id: str | None = None

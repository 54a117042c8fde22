"""The app's status enums are the one list of each state: the CHECK constraints of the
migrated schema allow exactly their members, and the API's Literal types name exactly
them (a state added on one side only fails here). Provider names are checked the same
way against the providers the code can build."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import get_args

import asyncpg
import pytest
from pydantic import TypeAdapter, ValidationError

from app.accounts.status import UserRole, UserStatus
from app.catalog.status import MediaState, VideoStatus
from app.commerce.routes.schemas import OrderStatusName, ProviderName
from app.commerce.status import (
    AttemptStatus,
    OrderKind,
    OrderStatus,
    RefundKind,
    RefundState,
    SubscriptionStatus,
)
from app.open_api.routes.admin import ChannelIn
from app.payments.factory import PAYMENT_PROVIDERS
from app.vod.registry import PROVIDER_NAMES

try:  # the admin video routes' home once app/routes moves into app/catalog
    from app.catalog.routes.admin import Provider as AdminVideoProvider
    from app.catalog.routes.admin import Status as AdminVideoStatus
except ModuleNotFoundError:
    from app.catalog.routes.admin import Provider as AdminVideoProvider
    from app.catalog.routes.admin import Status as AdminVideoStatus

# (table, column) -> the enum its CHECK constraint must match.
CHECKED: dict[tuple[str, str], type[StrEnum]] = {
    ("users", "role"): UserRole,
    ("users", "status"): UserStatus,
    ("videos", "status"): VideoStatus,
    ("videos", "media_status"): MediaState,
    ("orders", "status"): OrderStatus,
    ("orders", "kind"): OrderKind,
    ("payment_attempts", "status"): AttemptStatus,
    ("refunds", "status"): RefundState,
    ("refunds", "kind"): RefundKind,
    ("subscriptions", "status"): SubscriptionStatus,
}

VOD_NAMES = set(PROVIDER_NAMES)
PAYMENT_NAMES = set(PAYMENT_PROVIDERS)
# videos.provider and payment_attempts.provider have no CHECK: the provider registries
# check those names (tests/app/test_vod_provider_registry.py); upstream channels keep one.
NAMED: dict[tuple[str, str], set[str]] = {
    ("channels", "provider"): VOD_NAMES,
}

# A single-column list check as PostgreSQL prints it back:
# CHECK ((status = ANY (ARRAY['pending'::text, 'paid'::text])))
_LIST_CHECK = re.compile(r"^CHECK \(\((\w+) = ANY \(ARRAY\[(.*)\]\)\)\)$")
_ITEM = re.compile(r"'((?:[^']|'')*)'::text")


def allowed_values(definition: str) -> tuple[str, set[str]] | None:
    """(column, values) of a ``column IN (...)`` CHECK; None for any other check."""
    match = _LIST_CHECK.match(definition)
    if match is None:
        return None
    return match[1], {v.replace("''", "'") for v in _ITEM.findall(match[2])}


async def _list_checks(url: str) -> dict[tuple[str, str], set[str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT c.conrelid::regclass::text AS tbl, pg_get_constraintdef(c.oid) AS def"
            " FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace"
            " WHERE c.contype = 'c' AND n.nspname = current_schema()"
        )
    finally:
        await conn.close()
    found: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        parsed = allowed_values(row["def"])
        if parsed is not None:
            found[(row["tbl"], parsed[0])] = parsed[1]
    return found


def test_the_parser_reads_a_list_check_and_ignores_others() -> None:
    assert allowed_values("CHECK ((status = ANY (ARRAY['a'::text, 'it''s'::text])))") == (
        "status",
        {"a", "it's"},
    )
    assert allowed_values("CHECK ((amount_fen >= 0))") is None


@pytest.mark.parametrize(("table", "column"), sorted(CHECKED))
async def test_check_constraint_allows_exactly_the_enum(
    migrated_url: str, table: str, column: str
) -> None:
    checks = await _list_checks(migrated_url)
    assert (table, column) in checks, f"no CHECK (... IN (...)) on {table}.{column}"
    assert checks[(table, column)] == {m.value for m in CHECKED[(table, column)]}


@pytest.mark.parametrize(
    ("literal", "enum"),
    [(OrderStatusName, OrderStatus), (AdminVideoStatus, VideoStatus)],
)
def test_api_literals_name_the_enum_members(literal: object, enum: type[StrEnum]) -> None:
    assert set(get_args(literal)) == {m.value for m in enum}


@pytest.mark.parametrize(("table", "column"), sorted(NAMED))
async def test_provider_checks_allow_exactly_the_buildable_providers(
    migrated_url: str, table: str, column: str
) -> None:
    checks = await _list_checks(migrated_url)
    assert checks.get((table, column)) == NAMED[(table, column)]


def test_provider_names_are_checked_against_the_registries() -> None:
    payment: TypeAdapter[str] = TypeAdapter(ProviderName)
    vod: TypeAdapter[str] = TypeAdapter(AdminVideoProvider)
    assert all(payment.validate_python(name) == name for name in PAYMENT_NAMES)
    assert all(vod.validate_python(name) == name for name in VOD_NAMES)
    with pytest.raises(ValidationError):
        payment.validate_python("paypal")
    with pytest.raises(ValidationError):
        vod.validate_python("youtube")
    assert set(get_args(ChannelIn.model_fields["provider"].annotation)) == VOD_NAMES

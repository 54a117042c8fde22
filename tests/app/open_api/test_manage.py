"""Management operations on luser_db: they join transaction(), and a value out of a
column's range that reaches the database is a 422, never a 500 (real PostgreSQL)."""

from __future__ import annotations

import ast
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

import luser_db
from app.open_api import manage, routing_config
from app.open_api.manage import TokenSpec
from app.open_api.models import Channel, UserGroup
from app.open_api.secretbox import SecretBox
from luser_common import ValidationError
from luser_db import Db

from .conftest import MakeToken, MakeUser

MANAGE = [Path(manage.__file__), Path(routing_config.__file__)]


class Boom(Exception):
    pass


async def _wallet(pool: asyncpg.Pool, user_id: int, reference: str) -> tuple[int, int]:
    """(balance, ledger rows with ``reference``), read on a connection of its own."""
    async with pool.acquire() as conn:
        balance = await conn.fetchval("SELECT balance FROM users WHERE id = $1", user_id)
        rows = await conn.fetchval(
            "SELECT count(*) FROM wallet_ledger WHERE reference = $1", reference
        )
    return balance, rows


async def test_a_top_up_in_a_failed_transaction_leaves_no_trace(
    pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    user_id = await make_user(balance=100)
    reference = f"tx-{uuid.uuid4()}"
    with pytest.raises(Boom):
        async with luser_db.transaction():
            entry = await manage.top_up(user_id, 50, reference=reference)
            assert entry["balance_after"] == 150
            # It ran on the transaction's connection: not visible to anyone else yet.
            assert await _wallet(pool, user_id, reference) == (100, 0)
            raise Boom
    assert await _wallet(pool, user_id, reference) == (100, 0)
    # The same call in a transaction that commits is applied once.
    async with luser_db.transaction():
        await manage.top_up(user_id, 50, reference=reference)
    assert await _wallet(pool, user_id, reference) == (150, 1)


async def test_a_rolled_back_top_up_can_be_retried_under_its_reference(
    pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    user_id = await make_user()
    reference = f"retry-{uuid.uuid4()}"
    with pytest.raises(Boom):
        async with luser_db.transaction():
            await manage.top_up(user_id, 7, reference=reference)
            raise Boom
    first = await manage.top_up(user_id, 7, reference=reference)
    again = await manage.top_up(user_id, 7, reference=reference)
    assert (first["replayed"], again["replayed"]) == (False, True)
    assert await _wallet(pool, user_id, reference) == (7, 1)


async def test_out_of_range_values_that_reach_the_database_are_422(
    pool: asyncpg.Pool, make_user: MakeUser, make_token: MakeToken
) -> None:
    # The request types bound these; here the management layer is called directly.
    box = SecretBox(b"0" * 32)
    name = f"range-{uuid.uuid4().hex[:8]}"
    channel = await routing_config.save_channel({"name": name, "provider": "tencent"}, box)
    token_id, _ = await make_token(await make_user())
    await Db.execute("UPDATE channels SET priority = 1 WHERE id = ?", channel["id"])
    attempts: list[Callable[[], Awaitable[object]]] = [
        lambda: routing_config.save_channel(
            {"name": name + "x", "provider": "tencent", "priority": 2**40}, box
        ),
        lambda: routing_config.save_channel({"priority": 2**31}, box, channel["id"]),
        lambda: routing_config.save_ability(
            "default", "video.play_url", channel["id"], priority=2**31
        ),
        lambda: routing_config.set_price("range.probe", 2**63),
        lambda: manage.update_token(token_id, TokenSpec(quota_limit=10**20)),
        # Server-side overflow (SQLSTATE 22003): numeric(12, 6) and int4 arithmetic.
        lambda: UserGroup(name=f"g{uuid.uuid4().hex[:8]}", ratio=Decimal("1e400")).save(),
        lambda: Db.execute(
            "UPDATE channels SET priority = priority + ? WHERE id = ?", 2**31 - 1, channel["id"]
        ),
    ]
    states = []
    for attempt in attempts:
        with pytest.raises(ValidationError) as caught:
            await attempt()
        assert caught.value.status_code == 422
        states.append((caught.value.details or {}).get("sqlstate"))
    # The last two overflow in the server itself: numeric_value_out_of_range.
    assert states[-2:] == ["22003", "22003"]
    stored = await Channel.find_by_id(channel["id"])
    assert stored is not None and stored.priority == 1


async def test_a_ratio_beyond_the_column_is_refused_before_the_database() -> None:
    for ratio in ("1e400", "1000000", 10**7):
        with pytest.raises(ValidationError) as caught:
            await routing_config.save_group(f"g{uuid.uuid4().hex[:8]}", ratio)
        assert caught.value.field == "ratio"


def test_manage_uses_neither_asyncpg_nor_the_private_connection_module() -> None:
    imported: set[str] = set()
    nodes = (node for path in MANAGE for node in ast.walk(ast.parse(path.read_text())))
    for node in nodes:
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            imported.add(module)
            imported.update(f"{module}.{alias.name}" for alias in node.names)
    assert not {m for m in imported if m.split(".")[0] == "asyncpg"}
    assert not {m for m in imported if m.lstrip(".").split(".")[-1] == "_db"}

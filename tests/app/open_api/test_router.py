"""Requirements 15 and 16 (selection part): refresh drops disabled routes; weights hold."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import Counter

import asyncpg
import pytest

from app.open_api import routing_config
from app.open_api.router import ConfigRefresher, Route, RouterConfig, build_router_config
from app.open_api.secretbox import SecretBox
from luser_db.testing import count_statements

BOX = SecretBox.from_config("", b"test-pepper")


async def _channel(weight: int = 1, priority: int = 0, status: str = "enabled") -> int:
    row = await routing_config.save_channel(
        {
            "name": f"ch-{secrets.token_hex(4)}",
            "provider": "tencent",
            "weight": weight,
            "priority": priority,
            "status": status,
            "credentials": {"secret_id": "id", "secret_key": "k"},
        },
        BOX,
    )
    return int(row["id"])


async def _group() -> str:
    name = f"g{secrets.token_hex(4)}"
    await routing_config.save_group(name, "1")
    return name


async def test_disabled_channel_or_ability_never_selected_after_refresh(pool: asyncpg.Pool) -> None:
    group = await _group()
    a, b, c = await _channel(), await _channel(), await _channel()
    for ch in (a, b, c):
        await routing_config.save_ability(group, "video.play_url", ch)
    refresher = ConfigRefresher(poll_interval=3600)
    config = await refresher.refresh()
    rng = random.Random(7)
    assert {config.pick(group, "video.play_url", rng).id for _ in range(300)} == {a, b, c}  # type: ignore[union-attr]

    await routing_config.save_channel({"status": "disabled"}, BOX, a)
    await routing_config.save_ability(group, "video.play_url", b, enabled=False)
    config = await refresher.refresh()
    for _ in range(2_000):
        order = config.failover_order(group, "video.play_url", rng)
        assert [ch.id for ch in order] == [c]
    await routing_config.save_channel({"status": "disabled"}, BOX, c)
    config = await refresher.refresh()
    # Nothing of the group's is routable now: it falls back to the default group's
    # routes (if any), never to a disabled channel or ability.
    for _ in range(500):
        assert not {ch.id for ch in config.failover_order(group, "video.play_url", rng)} & {a, b, c}


async def test_refresh_follows_notifications(pool: asyncpg.Pool) -> None:
    group = await _group()
    ch = await _channel()
    await routing_config.save_ability(group, "catalog.search", ch)
    refresher = ConfigRefresher(poll_interval=3600)  # no polling: only LISTEN can wake it
    await refresher.start()
    try:
        assert refresher.config.pick(group, "catalog.search") is not None
        before = refresher.config.version
        await routing_config.save_channel({"status": "disabled"}, BOX, ch)
        for _ in range(200):
            if refresher.config.version != before:
                break
            await asyncio.sleep(0.02)
        assert refresher.config.version > before
        assert refresher.config.pick(group, "catalog.search") is None
    finally:
        await refresher.stop()


async def test_selection_reads_no_sql(pool: asyncpg.Pool) -> None:
    group = await _group()
    await routing_config.save_ability(group, "catalog.search", await _channel())
    config = await ConfigRefresher(poll_interval=3600).refresh()
    with count_statements() as counter:
        for _ in range(1_000):
            assert config.pick(group, "catalog.search") is not None
            assert config.cost("catalog.search", group) is not None
    assert counter.statements == []


def _snapshot(weights: dict[int, int], priorities: dict[int, int] | None = None) -> RouterConfig:
    priorities = priorities or {}
    channels = [
        {
            "id": i,
            "name": f"c{i}",
            "provider": "tencent",
            "base_url": "",
            "credentials": "",
            "priority": priorities.get(i, 0),
            "weight": w,
        }
        for i, w in weights.items()
    ]
    abilities = [
        {"group_name": "default", "ability": "x", "channel_id": i, "priority": None, "weight": None}
        for i in weights
    ]
    return build_router_config(
        1, channels, abilities, [{"ability": "x", "price": 1}], [{"name": "default", "ratio": "1"}]
    )


# chi-squared critical values at p = 0.001 by degrees of freedom
_CHI2_999 = {1: 10.828, 2: 13.816, 3: 16.266, 4: 18.467}


@pytest.mark.parametrize(
    "weights", [{1: 1, 2: 2, 3: 7}, {1: 5, 2: 5}, {1: 10, 2: 30, 3: 50, 4: 10}]
)
def test_top_tier_picks_follow_weights(weights: dict[int, int]) -> None:
    config = _snapshot(weights)
    rng = random.Random(20261121)
    n = 10_000
    counts = Counter(config.pick("default", "x", rng).id for _ in range(n))  # type: ignore[union-attr]
    total = sum(weights.values())
    chi2 = sum((counts[i] - n * w / total) ** 2 / (n * w / total) for i, w in weights.items())
    assert chi2 < _CHI2_999[len(weights) - 1], (chi2, counts)


def test_chi_squared_detects_wrong_weights() -> None:
    # The same statistic rejects a uniform picker when the weights are 1:2:7.
    rng = random.Random(1)
    counts = Counter(rng.choice([1, 2, 3]) for _ in range(10_000))
    expected = {1: 1_000, 2: 2_000, 3: 7_000}
    chi2 = sum((counts[i] - e) ** 2 / e for i, e in expected.items())
    assert chi2 > _CHI2_999[2]


def test_lower_tiers_only_after_the_top_tier() -> None:
    config = _snapshot({1: 1, 2: 1, 3: 5, 4: 0}, priorities={1: 10, 2: 10, 3: 0, 4: 10})
    rng = random.Random(3)
    for _ in range(500):
        order = [c.id for c in config.failover_order("default", "x", rng)]
        assert set(order[:2]) == {1, 2}
        assert order[2] == 4  # weight 0: last resort within its tier
        assert order[3] == 3


def test_unknown_group_falls_back_to_default_routes_and_ratio() -> None:
    config = _snapshot({1: 1})
    assert config.pick("vip", "x") is not None
    assert config.cost("x", "vip") == 1
    assert isinstance(config.routes_for("vip", "x")[0][0], Route)

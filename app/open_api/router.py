"""Channel routing: an immutable in-memory snapshot, refreshed on change.

``RouterConfig`` holds every enabled channel, ability route, price and group
ratio. It is rebuilt from the database at start and whenever the
``open_api_config`` notification fires (or the version table moves, polled as
a fallback), then swapped in with one assignment: a request sees either the
old or the new snapshot, never a mix, and never issues SQL to pick a channel.

Picking: routes for (group, ability) are split into priority tiers (highest
first). Within a tier, channels are ordered by weighted random sampling
without replacement, so the first pick follows the weights and the rest are
the failover order; then the next tier follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import luser_db
from app.open_api.money import call_cost
from luser_common.tasks import every
from luser_db import Db, Listener, Notification, transaction

__all__ = ["ChannelInfo", "ConfigRefresher", "Route", "RouterConfig", "load_router_config"]

log = logging.getLogger(__name__)

DEFAULT_GROUP = "default"


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    id: int
    name: str
    provider: str
    base_url: str
    credentials: str  # still encrypted; decrypted by the upstream factory when first used


@dataclass(frozen=True, slots=True)
class Route:
    channel: ChannelInfo
    priority: int
    weight: int


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """One consistent snapshot of the routing tables."""

    version: int = 0
    prices: Mapping[str, int] = field(default_factory=dict)
    ratios: Mapping[str, Decimal] = field(default_factory=dict)
    # (group, ability) -> tiers, highest priority first; each tier a tuple of routes.
    tiers: Mapping[tuple[str, str], tuple[tuple[Route, ...], ...]] = field(default_factory=dict)

    def price(self, ability: str) -> int | None:
        return self.prices.get(ability)

    def ratio(self, group: str) -> Decimal:
        return self.ratios.get(group) or self.ratios.get(DEFAULT_GROUP) or Decimal(1)

    def cost(self, ability: str, group: str) -> int | None:
        """Nano-units one call costs this group, or None for an unknown ability."""
        price = self.prices.get(ability)
        return None if price is None else call_cost(price, self.ratio(group))

    def routes_for(self, group: str, ability: str) -> tuple[tuple[Route, ...], ...]:
        """Tiers for the group, else the default group's (a group without own routes)."""
        return self.tiers.get((group, ability)) or self.tiers.get((DEFAULT_GROUP, ability), ())

    def failover_order(
        self, group: str, ability: str, rng: random.Random | None = None
    ) -> list[ChannelInfo]:
        """Channels to try in order: weighted shuffle within each tier, tiers by priority."""
        random_fn = (rng or random).random
        order: list[ChannelInfo] = []
        for tier in self.routes_for(group, ability):
            order.extend(_weighted_order(tier, random_fn))
        return order

    def pick(
        self, group: str, ability: str, rng: random.Random | None = None
    ) -> ChannelInfo | None:
        order = self.failover_order(group, ability, rng)
        return order[0] if order else None

    def channel_ids(self) -> set[int]:
        return {r.channel.id for tiers in self.tiers.values() for tier in tiers for r in tier}


def _weighted_order(tier: tuple[Route, ...], random_fn: Callable[[], float]) -> list[ChannelInfo]:
    # Efraimidis-Spirakis: key = u ** (1 / w); sorting by key desc samples without
    # replacement with probability proportional to weight. Weight 0 goes last.
    keyed = []
    for route in tier:
        u = random_fn()
        key = u ** (1.0 / route.weight) if route.weight > 0 else -1.0 + u
        keyed.append((key, route.channel))
    keyed.sort(key=lambda kv: kv[0], reverse=True)
    return [channel for _, channel in keyed]


_CHANNELS_SQL = """
SELECT id, name, provider, base_url, credentials, priority, weight
FROM channels WHERE status = 'enabled'
"""
_ABILITIES_SQL = """
SELECT group_name, ability, channel_id, priority, weight
FROM abilities WHERE enabled
"""


_VERSION_SQL = "SELECT version FROM open_api_config_version WHERE id = 1"


async def load_router_config() -> RouterConfig:
    """Read channels, abilities, prices and groups in one consistent snapshot."""
    async with transaction(isolation="repeatable_read", readonly=True):
        version = await Db.query_value(_VERSION_SQL)
        channels = await Db.find(_CHANNELS_SQL)
        abilities = await Db.find(_ABILITIES_SQL)
        prices = await Db.find("SELECT ability, price FROM ability_prices")
        groups = await Db.find("SELECT name, ratio FROM user_groups")
    return build_router_config(version or 0, channels, abilities, prices, groups)


def build_router_config(
    version: int,
    channels: Sequence[Any],
    abilities: Sequence[Any],
    prices: Sequence[Any],
    groups: Sequence[Any],
) -> RouterConfig:
    """A snapshot from rows (records or plain mappings with the same keys)."""
    by_id: dict[int, tuple[ChannelInfo, int, int]] = {}
    for c in channels:
        info = ChannelInfo(
            int(c["id"]),
            str(c["name"]),
            str(c["provider"]),
            str(c["base_url"]),
            str(c["credentials"]),
        )
        by_id[info.id] = (info, int(c["priority"]), int(c["weight"]))
    grouped: dict[tuple[str, str], dict[int, list[Route]]] = {}
    for a in abilities:
        found = by_id.get(int(a["channel_id"]))
        if found is None:  # disabled (or deleted) channel: never routable
            continue
        channel, ch_priority, ch_weight = found
        priority = ch_priority if a["priority"] is None else int(a["priority"])
        weight = ch_weight if a["weight"] is None else int(a["weight"])
        key = (str(a["group_name"]), str(a["ability"]))
        grouped.setdefault(key, {}).setdefault(priority, []).append(
            Route(channel, priority, weight)
        )
    tiers = {
        key: tuple(
            tuple(sorted(by_p[p], key=lambda r: r.channel.id)) for p in sorted(by_p, reverse=True)
        )
        for key, by_p in grouped.items()
    }
    return RouterConfig(
        version=int(version),
        prices={str(p["ability"]): int(p["price"]) for p in prices},
        ratios={str(g["name"]): Decimal(str(g["ratio"])) for g in groups},
        tiers=tiers,
    )


CONFIG_CHANNEL = "open_api_config"  # payload: the new config version
TOKENS_CHANNEL = "open_api_tokens"  # payload: "token:<id>" or "user:<id>"


class ConfigRefresher:
    """Keeps a RouterConfig current: LISTEN for changes, poll the version as a fallback.

    The LISTEN connection is ``luser_db.listen``'s: it reconnects by itself and then
    calls ``_relistened``. Notifications sent while it was away are lost -- token and
    owner changes among them -- so the token cache is dropped (``on_listen_gap``) and
    the routing snapshot reloaded once LISTEN is back; the poll also drops the cache
    while the listener is down.
    """

    def __init__(
        self,
        *,
        poll_interval: float = 5.0,
        on_token_change: Callable[[str], None] | None = None,
        on_config_change: Callable[[], None] | None = None,
        on_listen_gap: Callable[[], None] | None = None,
    ) -> None:
        self.config = RouterConfig()
        self._poll_interval = poll_interval
        self._on_token_change = on_token_change
        self._on_config_change = on_config_change
        self._on_listen_gap = on_listen_gap
        self._task: asyncio.Task[None] | None = None
        self._listener: Listener | None = None
        self._lock = asyncio.Lock()
        self.refreshes = 0
        self.reconnects = 0

    async def refresh(self) -> RouterConfig:
        """Reload now and swap the snapshot in (single-flight)."""
        async with self._lock:
            return await self._reload()

    async def _reload(self) -> RouterConfig:
        config = await load_router_config()
        changed = config.version != self.config.version
        self.config = config
        self.refreshes += 1
        if changed and self._on_config_change is not None:
            self._on_config_change()
        return config

    async def start(self) -> None:
        # LISTEN before the first load: a change committed in between is then
        # either in the snapshot or announced, never lost.
        self._listener = await luser_db.listen(
            [CONFIG_CHANNEL, TOKENS_CHANNEL], self._notified, on_reconnect=self._relistened
        )
        try:
            await self.refresh()
        except BaseException:
            await self._unlisten()  # its connection must not outlive a failed start
            raise
        self._task = asyncio.create_task(
            every(self._poll_interval, self._poll, name="open-api-config-poll"),
            name="open-api-config-refresher",
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._unlisten()

    @property
    def listening(self) -> bool:
        return self._listener is not None and self._listener.connected

    @property
    def listener_pid(self) -> int | None:
        """The server process id of the LISTEN connection (None while it is away)."""
        return None if self._listener is None else self._listener.pid

    async def _unlisten(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()

    async def _relistened(self) -> None:
        """LISTEN is back after a loss: distrust what may have been missed meanwhile."""
        self.reconnects += 1
        log.warning("open API: LISTEN connection re-established; caches refreshed")
        if self._on_listen_gap is not None:
            self._on_listen_gap()
        await self.refresh()

    async def _poll(self) -> None:
        if not self.listening and self._on_listen_gap is not None:
            self._on_listen_gap()  # notifications are being missed: nothing cached is trusted
        version = await Db.query_value(_VERSION_SQL)
        if version != self.config.version:
            await self.refresh()

    def _notified(self, note: Notification) -> Awaitable[None] | None:
        # Token changes apply synchronously, in the listener's dispatch: no task switch
        # in between; a config change returns its reload, which the listener runs as a task.
        if note.channel == TOKENS_CHANNEL:
            if self._on_token_change is not None:
                self._on_token_change(note.payload)
            return None
        return self._config_changed(note.payload)

    async def _config_changed(self, payload: str) -> None:
        async with self._lock:  # a burst of changes: one reload covers every version up to it
            if not payload.isdigit() or int(payload) > self.config.version:
                await self._reload()

"""The query cache's stores: an in-process LRU with TTL, and Redis.

Both keep, per table, a generation number that every committed write bumps, plus a
global one (``*``) for writes that name no table. An entry is saved with the
generations its tables had *before* its query ran and is served only while they
are unchanged -- so invalidation never scans entries, and a write racing a miss
can only make the fresh entry stale, never make a stale one look fresh.
"""

from __future__ import annotations

import asyncio
import io
import pickle
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

from ._cache_tables import ALL

__all__ = ["MemoryStore", "RedisStore", "Store", "loads_trusted", "portable"]

Stamp = tuple[int, ...]


class Store(Protocol):
    evictions: int

    async def lookup(self, key: str, tables: Sequence[str]) -> tuple[bool, Any, Stamp]:
        """(found, value, the current stamp of ``tables``)."""
        ...

    async def save(self, key: str, stamp: Stamp, value: Any, ttl: float) -> None: ...

    async def bump(self, tables: Sequence[str]) -> None: ...

    async def clear(self) -> None: ...

    async def close(self) -> None: ...


class MemoryStore:
    """A bounded LRU of ``key -> (stamp, expires_at, value)``; values are shared, so
    callers store immutable rows and rebuild their objects on every hit."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[str, tuple[Stamp, float, Any]] = OrderedDict()
        self.generations: dict[str, int] = {}
        self.evictions = 0

    def stamp(self, tables: Sequence[str]) -> Stamp:
        gens = self.generations
        return (gens.get(ALL, 0), *(gens.get(t, 0) for t in tables))

    async def lookup(self, key: str, tables: Sequence[str]) -> tuple[bool, Any, Stamp]:
        stamp = self.stamp(tables)
        entry = self.entries.get(key)
        if entry is None:
            return False, None, stamp
        if entry[0] != stamp or entry[1] <= time.monotonic():
            del self.entries[key]
            self.evictions += 1
            return False, None, stamp
        self.entries.move_to_end(key)
        return True, entry[2], stamp

    async def save(self, key: str, stamp: Stamp, value: Any, ttl: float) -> None:
        entries = self.entries
        entries[key] = (stamp, time.monotonic() + ttl, value)
        entries.move_to_end(key)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)
            self.evictions += 1

    async def bump(self, tables: Sequence[str]) -> None:
        self.bump_now(tables)

    def bump_now(self, tables: Sequence[str]) -> None:
        """``bump`` without a coroutine: a committed write announces on every call."""
        gens = self.generations
        for table in tables:
            gens[table] = gens.get(table, 0) + 1

    async def clear(self) -> None:
        self.entries.clear()
        await self.bump((ALL,))

    async def close(self) -> None:
        self.entries.clear()


class RedisStore:
    """Entries and generations in Redis, shared by every process: a write's ``INCR``
    is seen by all of them at once, so no notification is needed. One round trip per
    lookup (the entry and its generations in one pipeline)."""

    def __init__(self, url: str, prefix: str, timeout: float) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.evictions = 0  # Redis expires entries itself; stale ones are counted here
        self._clients: dict[asyncio.AbstractEventLoop, Any] = {}

    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            import redis.asyncio as aioredis

            client = self._clients[loop] = aioredis.from_url(
                self.url,
                socket_connect_timeout=self.timeout,
                socket_timeout=self.timeout,
                retry_on_timeout=False,
            )
        return client

    def _gen_keys(self, tables: Sequence[str]) -> list[str]:
        # "@" cannot start a cache name, so these never collide with an entry key
        return [f"{self.prefix}@gen:{t}" for t in (ALL, *tables)]

    async def lookup(self, key: str, tables: Sequence[str]) -> tuple[bool, Any, Stamp]:
        pipe = self._client().pipeline(transaction=False)
        pipe.get(self.prefix + key)
        pipe.mget(self._gen_keys(tables))
        raw, gens = await pipe.execute()
        stamp = tuple(int(g or 0) for g in gens)
        if raw is None:
            return False, None, stamp
        saved, value = loads_trusted(raw)
        if tuple(saved) != stamp:
            self.evictions += 1
            return False, None, stamp
        return True, value, stamp

    async def save(self, key: str, stamp: Stamp, value: Any, ttl: float) -> None:
        data = pickle.dumps((stamp, value), protocol=pickle.HIGHEST_PROTOCOL)
        await self._client().set(self.prefix + key, data, px=max(1, int(ttl * 1000)))

    async def bump(self, tables: Sequence[str]) -> None:
        pipe = self._client().pipeline(transaction=False)
        for name in self._gen_keys(tables)[1:]:
            pipe.incr(name)
        await pipe.execute()

    async def clear(self) -> None:
        await self.bump((ALL,))

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        loop = asyncio.get_running_loop()
        for owner, client in clients.items():
            if owner is loop:
                await client.aclose()


def portable(value: Any) -> Any:
    """Rows as plain dicts (driver rows do not pickle, and a model builds faster from a
    dict); lists and tuples of them too. What both stores keep."""
    if value.__class__ is list or value.__class__ is tuple:
        return value.__class__(portable(v) for v in value)
    if value is not None and value.__class__ is not dict and hasattr(value, "items"):
        return dict(value.items())
    return value


# Values read back from Redis are unpickled with an allow-list: rows of PostgreSQL's
# ordinary types only, so whoever can write to Redis cannot make us run code.
_ALLOWED = {
    ("builtins", name)
    for name in ("list", "tuple", "dict", "set", "frozenset", "bytes", "bytearray", "str")
} | {
    ("datetime", "datetime"),
    ("datetime", "date"),
    ("datetime", "time"),
    ("datetime", "timedelta"),
    ("datetime", "timezone"),
    ("decimal", "Decimal"),
    ("uuid", "UUID"),
    ("ipaddress", "IPv4Address"),
    ("ipaddress", "IPv6Address"),
    ("ipaddress", "IPv4Network"),
    ("ipaddress", "IPv6Network"),
    ("ipaddress", "IPv4Interface"),
    ("ipaddress", "IPv6Interface"),
    ("luser_db._json", "RawJson"),
    ("zoneinfo", "ZoneInfo"),
}


class _TrustedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"cache entry holds a {module}.{name}")
        return super().find_class(module, name)


def loads_trusted(data: bytes) -> Any:
    return _TrustedUnpickler(io.BytesIO(data)).load()

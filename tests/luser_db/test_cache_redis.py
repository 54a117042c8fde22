"""The Redis store (shared by processes through per-table generations in Redis), Redis
down (bypassed, counted, logged once), and every ``[cache]`` key's effect."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

import luser_db
from luser_config import Settings
from luser_db import Field, Model, cache
from luser_db._cache_store import MemoryStore, RedisStore
from luser_db.testing import assert_queries

pytestmark = pytest.mark.usefixtures("clean_tables")

REDIS = "redis://127.0.0.1:6379/15"


class RUser(Model, table="orm.users"):
    id: int = Field(primary_key=True)
    name: str
    email: str
    age: int = 0


@pytest_asyncio.fixture(loop_scope="session", autouse=True)
async def fresh_cache() -> AsyncIterator[None]:
    cache.reset()
    yield
    await cache.close()
    cache.reset()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


def _names() -> object:
    return RUser.query().order_by("id").cache("names", ttl=600)


async def test_redis_backend_hits_and_invalidation_are_shared() -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    cache.configure(enabled=True, backend="redis", url=REDIS, key_prefix=prefix)
    await RUser(name="ann", email="ann@e").save()
    assert [u.name for u in await _names().all()] == ["ann"]  # type: ignore[attr-defined]
    with assert_queries(0):
        assert [u.name for u in await _names().all()] == ["ann"]  # type: ignore[attr-defined]
    # Another process is another store on the same Redis: it sees the entry...
    other = RedisStore(REDIS, prefix, 2.0)
    key = next(iter(cache.stats().hits))
    assert key == "names"
    await RUser(name="bob", email="bob@e").save()  # ...and this write's INCR
    assert [u.name for u in await _names().all()] == ["ann", "bob"]  # type: ignore[attr-defined]
    await other.bump(["users"])  # a write announced by another process
    with assert_queries(1):
        await _names().all()  # type: ignore[attr-defined]
    await other.close()


async def test_redis_down_bypasses_counts_and_logs_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    await RUser(name="ann", email="ann@e").save()
    cache.configure(enabled=True, backend="redis", url=f"redis://127.0.0.1:{_closed_port()}/0")
    monkeypatch.setattr(cache, "RETRY_SECONDS", 0.0)  # every call tries Redis again
    caplog.set_level(logging.WARNING, logger="luser_db.cache")
    for _ in range(3):
        with assert_queries(1):
            assert len(await _names().all()) == 1  # type: ignore[attr-defined]
    assert cache.stats().errors == 3
    await RUser(name="bob", email="bob@e").save()  # its INCR fails too: kept for later
    assert cache._state.pending == {"users"}
    warnings = [r for r in caplog.records if r.name == "luser_db.cache"]
    assert len(warnings) == 1, warnings


async def test_redis_back_applies_the_evictions_it_missed() -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    cache.configure(enabled=True, backend="redis", url=REDIS, key_prefix=prefix)
    await RUser(name="ann", email="ann@e").save()
    await _names().all()  # type: ignore[attr-defined]
    cache._state.pending.add("users")  # a write while Redis was away
    with assert_queries(1):
        await _names().all()  # type: ignore[attr-defined]
    assert not cache._state.pending


def test_every_cache_config_key_is_read() -> None:
    cfg = Settings.model_validate(
        {
            "cache": {
                "enabled": False,
                "backend": "redis",
                "url": "redis://cache-host:6380/2",
                "default_ttl_seconds": 42,
                "max_entries": 7,
                "key_prefix": "qc:",
                "notify": False,
            },
            "redis": {"url": "redis://other:6379/0", "key_prefix": "app:"},
        }
    )
    s = cache.settings_from(cfg)
    assert (s.enabled, s.backend, s.url) == (False, "redis", "redis://cache-host:6380/2")
    assert (s.default_ttl, s.max_entries, s.key_prefix, s.notify) == (42.0, 7, "app:qc:", False)
    fallback = cache.settings_from(Settings.model_validate({"redis": {"url": "redis://r:1/0"}}))
    assert fallback.url == "redis://r:1/0" and fallback.enabled and fallback.notify


async def test_settings_take_effect() -> None:
    cache.configure(enabled=True, backend="memory", notify=False, default_ttl=1234)
    await RUser(name="ann", email="ann@e").save()
    await RUser.query().cache("ttl").all()
    store = cache._state.store
    assert isinstance(store, MemoryStore)
    ((_, expires, _),) = store.entries.values()
    assert 1200 < expires - time.monotonic() <= 1234  # default_ttl is honoured
    got: asyncio.Queue[luser_db.Notification] = asyncio.Queue()
    listener = await luser_db.listen(cache.CHANNEL, got.put_nowait)
    try:
        cache.configure(notify=True, default_ttl=600)
        await RUser.query().cache("ttl").all()
        sent: list[luser_db.QueryEvent] = []
        remove = luser_db.on_query(sent.append)
        with assert_queries(1):  # the announcement is internal: no listener sees it
            await RUser(name="bob", email="bob@e").save()
        remove()
        assert [e.kind for e in sent] == ["insert"]
        note = await asyncio.wait_for(got.get(), 10)
        assert note.payload.endswith(" users")  # "<sender> <tables>"
        cache.configure(notify=False)
        await RUser(name="cy", email="cy@e").save()
        await luser_db.notify(cache.CHANNEL, "marker")
        note = await asyncio.wait_for(got.get(), 10)
        assert note.payload == "marker"  # nothing was announced before it
    finally:
        await listener.close()

"""Shared fixtures. The ``database_url`` fixture comes from the luser_db.testing plugin."""

from __future__ import annotations

import os

import pytest

REDIS_OFF = "off"


@pytest.fixture(scope="session")
async def redis_url() -> str:
    """A reachable Redis for the tests that need one: ``LUSER_TEST_REDIS_URL`` (default
    ``redis://127.0.0.1:6379/15``; CI runs one). Unreachable fails the test; only
    ``LUSER_TEST_REDIS_URL=off`` skips, and says so."""
    url = os.environ.get("LUSER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15").strip()
    if url == REDIS_OFF:
        pytest.skip("Redis tests turned off (LUSER_TEST_REDIS_URL=off)")
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    client = aioredis.from_url(url, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        pytest.fail(
            f"Redis at {url} is not reachable ({exc}); start one "
            "(redis-server --daemonize yes) or set LUSER_TEST_REDIS_URL=off to skip these tests"
        )
    finally:
        await client.aclose()
    return url

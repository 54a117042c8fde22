"""The [redis] keys: url, password and db make the connection URL; key_prefix prefixes
every key the service writes (checked against a real Redis)."""

from __future__ import annotations

import secrets

import redis.asyncio as aioredis

from app.container import LoginLimiter
from luser_config.schema import RedisConfig, Settings


def test_connection_url_applies_password_and_db() -> None:
    assert RedisConfig().connection_url() is None
    plain = RedisConfig.model_validate({"url": "redis://h:6379/0"})
    assert plain.connection_url() == "redis://h:6379/0"
    both = RedisConfig.model_validate(
        {"url": "rediss://u:old@h:6380/0", "password": "p@ss/w", "db": 5}
    )
    assert both.connection_url() == "rediss://u:p%40ss%2Fw@h:6380/5"
    no_user = RedisConfig.model_validate({"url": "redis://h", "password": "x"})
    assert no_user.connection_url() == "redis://:x@h"


async def test_login_limiter_keys_carry_the_prefix_and_the_db(redis_url: str) -> None:
    prefix = f"t{secrets.token_hex(4)}:"
    cfg = Settings.model_validate({"redis": {"url": redis_url, "db": 3, "key_prefix": prefix}})
    limiter = LoginLimiter.for_config(cfg)
    client = aioredis.from_url(
        RedisConfig.model_validate({"url": redis_url, "db": 3}).connection_url() or ""
    )
    try:
        await limiter.hit("ann@example.com", "10.0.0.1")
        keys = [k.decode() async for k in client.scan_iter(f"{prefix}*")]
        assert keys == [f"{prefix}login:login:ann@example.com|10.0.0.1"]
    finally:
        await client.delete(*[k async for k in client.scan_iter(f"{prefix}*")] or ["-"])
        await client.aclose()

"""Token buckets in memory and in Redis, and the 429 envelope from the middleware."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.middleware import Middleware
from starlette.testclient import TestClient
from starlette.types import Scope

from luser_common import (
    ConfigError,
    LimitExceeded,
    NetworkError,
    Rate,
    RedisTokenBucketLimiter,
    TokenBucketLimiter,
)
from luser_common.middleware import RateLimitMiddleware, RateLimitRule
from luser_common.ratelimit import enforce, make_limiter, retry_after_header

from .conftest import make_app


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_parse() -> None:
    assert Rate.parse("120/minute") == Rate(2.0, 120)
    assert Rate.parse("5/s", burst=1) == Rate(5.0, 1)
    for bad in ("fast", "10/fortnight", "0/s"):
        with pytest.raises(ConfigError):
            Rate.parse(bad)


async def test_memory_bucket_burst_then_refill() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(Rate(per_second=1, burst=3), clock=clock)
    results = [await limiter.hit("ip") for _ in range(4)]
    assert [allowed for allowed, _ in results] == [True, True, True, False]
    assert results[-1][1] == pytest.approx(1.0)
    assert (await limiter.hit("other"))[0]  # buckets are per key
    clock.now += 1.0
    assert (await limiter.hit("ip"))[0]
    assert not (await limiter.hit("ip"))[0]
    await limiter.reset("ip")
    assert (await limiter.hit("ip"))[0]


async def test_memory_bucket_evicts_least_recent() -> None:
    limiter = TokenBucketLimiter(Rate(1, 1), max_keys=2, clock=FakeClock())
    for key in ("a", "b", "c"):
        await limiter.hit(key)
    assert list(limiter._buckets) == ["b", "c"]


async def test_enforce_for_app_code() -> None:
    limiter = TokenBucketLimiter(Rate(per_second=0.25, burst=1), clock=FakeClock())
    await enforce(limiter, "login:ann")
    with pytest.raises(LimitExceeded) as info:
        await enforce(limiter, "login:ann", message="登录尝试过多")
    assert info.value.headers == {"Retry-After": "4"} and info.value.message == "登录尝试过多"


def test_retry_after_header_is_whole_seconds() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(2.2) == "3"


def _limited_client(*middleware_args: Any, **kwargs: Any) -> TestClient:
    return TestClient(make_app(Middleware(RateLimitMiddleware, *middleware_args, **kwargs)))


def test_middleware_global_limit_429() -> None:
    # A frozen clock: no refill between the requests, so Retry-After is exactly 2 s.
    limiter = TokenBucketLimiter(Rate(per_second=0.5, burst=2), clock=lambda: 1000.0)
    with _limited_client(limiter) as c:
        assert [c.get("/rid").status_code for _ in range(2)] == [200, 200]
        resp = c.get("/rid", headers={"X-Request-ID": "rl-1"})
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "2"
    body = resp.json()
    assert body["error"]["code"] == "LIMIT_EXCEEDED"
    assert body["error"]["request_id"] == "rl-1" and body["error"]["details"] == {"retry_after": 2}


def test_middleware_per_route_rule_and_custom_key() -> None:
    login = TokenBucketLimiter(Rate(per_second=0.1, burst=1))
    rule = RateLimitRule("/echo", login, methods={"POST"})

    def by_header(scope: Scope) -> str | None:
        return dict(scope["headers"]).get(b"x-user", b"").decode() or None

    with _limited_client(rules=[rule], key_func=by_header) as c:
        body = {"name": "a", "age": 1}
        assert c.post("/echo", json=body, headers={"x-user": "u1"}).status_code == 200
        assert c.post("/echo", json=body, headers={"x-user": "u1"}).status_code == 429
        assert c.post("/echo", json=body, headers={"x-user": "u2"}).status_code == 200
        # No key -> not limited; other routes have no global limiter.
        assert c.post("/echo", json=body).status_code == 200
        assert all(c.get("/rid").status_code == 200 for _ in range(5))


def test_memory_when_no_redis_url() -> None:
    assert isinstance(make_limiter(Rate(1, 1)), TokenBucketLimiter)


@pytest.fixture
async def redis_limiter(redis_url: str) -> AsyncIterator[RedisTokenBucketLimiter]:
    # 0.001/s: a second of test time refills a thousandth of a token, so the numbers
    # below hold however slow the machine (Redis' clock cannot be injected).
    limiter = make_limiter(
        Rate(per_second=0.001, burst=3), redis_url, prefix=f"luser:test:{uuid.uuid4().hex}:"
    )
    assert isinstance(limiter, RedisTokenBucketLimiter)
    yield limiter
    await limiter.reset("k")
    await limiter.close()


async def test_redis_bucket(redis_limiter: RedisTokenBucketLimiter) -> None:
    results = [await redis_limiter.hit("k") for _ in range(4)]
    assert [allowed for allowed, _ in results] == [True, True, True, False]
    assert 990 < results[-1][1] <= 1000  # one token at 0.001/s, minus what refilled since
    await redis_limiter.reset("k")
    assert (await redis_limiter.hit("k"))[0]


async def test_redis_bucket_is_atomic_under_concurrency(
    redis_limiter: RedisTokenBucketLimiter,
) -> None:
    results = await asyncio.gather(*(redis_limiter.hit("k") for _ in range(20)))
    assert sum(allowed for allowed, _ in results) == 3


async def test_redis_down_raises_network_error() -> None:
    limiter = RedisTokenBucketLimiter(Rate(1, 1), "redis://127.0.0.1:1/0")
    try:
        with pytest.raises(NetworkError):
            await limiter.hit("k")
    finally:
        await limiter.close()


def test_middleware_fails_open_when_backend_down() -> None:
    limiter = RedisTokenBucketLimiter(Rate(0.01, 1), "redis://127.0.0.1:1/0")
    with _limited_client(limiter) as c:
        assert [c.get("/rid").status_code for _ in range(3)] == [200, 200, 200]

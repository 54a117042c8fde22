"""Token-bucket rate limiters: in memory for one process, Redis for many.

``await limiter.hit(key)`` takes one token from ``key``'s bucket and returns
``(allowed, retry_after_seconds)``. A bucket holds at most ``burst`` tokens and
refills at ``rate`` tokens per second, so ``Rate(5 / 60, burst=5)`` allows five
login attempts at once, then one more every twelve seconds.
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import ConfigError, LimitExceeded, NetworkError

__all__ = [
    "Rate",
    "RateLimiter",
    "RedisTokenBucketLimiter",
    "TokenBucketLimiter",
    "enforce",
    "make_limiter",
    "retry_after_header",
]

_PERIODS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_RATE_TEXT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*")


@dataclass(frozen=True, slots=True)
class Rate:
    """``per_second`` tokens added each second, at most ``burst`` stored."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ConfigError("限流配置错误: 速率必须为正数且突发量至少为 1")

    @classmethod
    def parse(cls, text: str, burst: int | None = None) -> Rate:
        """``"100/minute"``, ``"5/s"``; ``burst`` defaults to the count per period."""
        match = _RATE_TEXT.fullmatch(text.lower())
        if not match or match.group(2) not in _PERIODS:
            raise ConfigError(f"限流配置错误: 无法解析 {text!r}, 例如 '100/minute'")
        count = float(match.group(1))
        return cls(count / _PERIODS[match.group(2)], burst or max(1, math.ceil(count)))


class RateLimiter(Protocol):
    rate: Rate

    async def hit(self, key: str, cost: float = 1) -> tuple[bool, float]: ...

    async def reset(self, key: str) -> None: ...

    async def close(self) -> None: ...


def retry_after_header(retry_after: float) -> str:
    """Whole seconds for ``Retry-After``; never 0, so clients actually wait."""
    return str(max(1, math.ceil(retry_after)))


async def enforce(
    limiter: RateLimiter, key: str, *, cost: float = 1, message: str | None = None
) -> None:
    """Take a token or raise LimitExceeded (429, ``Retry-After``), e.g. per login account."""
    allowed, retry_after = await limiter.hit(key, cost)
    if not allowed:
        seconds = retry_after_header(retry_after)
        raise LimitExceeded(
            message or "操作过于频繁, 请稍后再试",
            details={"retry_after": int(seconds)},
            headers={"Retry-After": seconds},
        )


class TokenBucketLimiter:
    """In-process buckets, least recently used ones dropped beyond ``max_keys``."""

    def __init__(
        self,
        rate: Rate,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    async def hit(self, key: str, cost: float = 1) -> tuple[bool, float]:
        return self.hit_sync(key, cost)

    def hit_sync(self, key: str, cost: float = 1) -> tuple[bool, float]:
        # No await inside: on one event loop this read-modify-write cannot interleave.
        now = self._clock()
        tokens, last = self._buckets.pop(key, (float(self.rate.burst), now))
        tokens = min(float(self.rate.burst), tokens + max(0.0, now - last) * self.rate.per_second)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            # Evicting forgets a partly used bucket: that key briefly gets a fresh burst.
            self._buckets.popitem(last=False)
        return allowed, 0.0 if allowed else (cost - tokens) / self.rate.per_second

    async def reset(self, key: str) -> None:
        self._buckets.pop(key, None)

    async def close(self) -> None:
        self._buckets.clear()


# KEYS[1] bucket; ARGV rate/s, burst, cost. Redis' own clock keeps many app servers in step.
_LUA_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local retry = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(retry)}
"""


class RedisTokenBucketLimiter:
    """Buckets in Redis, updated atomically by one Lua script; shared by every process."""

    def __init__(self, rate: Rate, redis: Any, *, prefix: str = "luser:ratelimit:") -> None:
        """``redis`` is a ``redis.asyncio.Redis`` client or a ``redis://`` URL."""
        if isinstance(redis, str):
            import redis.asyncio as aioredis

            redis = aioredis.from_url(redis)
        self.rate = rate
        self.prefix = prefix
        self._redis = redis
        self._script = redis.register_script(_LUA_TOKEN_BUCKET)

    async def hit(self, key: str, cost: float = 1) -> tuple[bool, float]:
        from redis.exceptions import RedisError

        args = [self.rate.per_second, self.rate.burst, cost]
        try:
            allowed, retry = await self._script(keys=[self.prefix + key], args=args)
        except (TimeoutError, RedisError, OSError) as exc:
            raise NetworkError("限流服务暂不可用") from exc
        return bool(int(allowed)), float(retry)

    async def reset(self, key: str) -> None:
        await self._redis.delete(self.prefix + key)

    async def close(self) -> None:
        await self._redis.aclose()


def make_limiter(
    rate: Rate, redis_url: str | None = None, *, prefix: str = "luser:ratelimit:"
) -> RateLimiter:
    """Redis-backed when ``redis_url`` is given (shared across workers), else in memory."""
    if redis_url:
        return RedisTokenBucketLimiter(rate, redis_url, prefix=prefix)
    return TokenBucketLimiter(rate)

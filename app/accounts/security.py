"""Credentials: password hashing, access JWTs and the login rate limiter.

Thin adapters over luser_common so the account service reads in domain terms.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import anyio.to_thread

from app.settings import AppConfig, JwtConfig
from luser_common import InvalidToken, LimitExceeded
from luser_common.jwt_codec import JwtCodec
from luser_common.ratelimit import (
    Rate,
    RateLimiter,
    TokenBucketLimiter,
    make_limiter,
    retry_after_header,
)
from luser_common.utils import hash_password, sha256_hex, verify_password

__all__ = [
    "AccessClaims",
    "AccessTokens",
    "LoginLimiter",
    "burn_password_check",
    "hash_password",
    "hash_password_async",
    "new_refresh_secret",
    "sha256_hex",
    "verify_password",
    "verify_password_async",
]

# Verified against when the account does not exist, so both paths cost one argon2 run.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


# argon2 takes tens of milliseconds of CPU on purpose: run it off the event loop.


async def hash_password_async(password: str) -> str:
    return await anyio.to_thread.run_sync(hash_password, password)


async def verify_password_async(password: str, password_hash: str) -> bool:
    return await anyio.to_thread.run_sync(verify_password, password, password_hash)


async def burn_password_check(password: str) -> None:
    """Spend the time of a real verification (unknown account: no timing oracle)."""
    await verify_password_async(password, _DUMMY_HASH)


def new_refresh_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    role: str
    issued_at_ms: int


class AccessTokens:
    """Short-lived access JWTs (``typ=access``) carrying the user id and role."""

    TYPE = "access"

    def __init__(self, config: JwtConfig) -> None:
        self.ttl_seconds = config.access_ttl_seconds
        self._codec = JwtCodec(
            config.secret.get_secret_value(),
            algorithm=config.algorithm,
            issuer=config.issuer,
            access_ttl=config.access_ttl_seconds,
            leeway=config.leeway_seconds,
        )

    def encode(self, user_id: int, role: str) -> str:
        # iat has one-second resolution; refusing tokens older than a password change
        # needs finer ordering, hence iat_ms.
        return self._codec.encode(
            user_id, {"role": role, "typ": self.TYPE, "iat_ms": time.time_ns() // 1_000_000}
        )

    def decode(self, token: str) -> AccessClaims:
        claims = self._codec.decode(token)
        sub = claims.get("sub")
        if claims.get("typ") != self.TYPE or not isinstance(sub, str) or not sub.isdigit():
            raise InvalidToken()
        issued_ms = claims.get("iat_ms")
        if not isinstance(issued_ms, int):
            issued_ms = int(claims["iat"]) * 1000
        return AccessClaims(int(sub), str(claims.get("role", "user")), issued_ms)


class LoginLimiter:
    """Login attempts per (account, client IP): ``attempts`` at once, then one per
    ``window_seconds / attempts``."""

    def __init__(
        self, attempts: int = 5, window_seconds: float = 60.0, limiter: RateLimiter | None = None
    ) -> None:
        self._limiter = limiter or TokenBucketLimiter(Rate(attempts / window_seconds, attempts))

    @classmethod
    def for_config(cls, config: AppConfig) -> LoginLimiter:
        """Shared through Redis when ``redis.url`` is set (several workers), else in memory."""
        redis = config.redis
        prefix = f"{redis.key_prefix}login:"
        return cls(limiter=make_limiter(Rate(5 / 60.0, 5), redis.connection_url(), prefix=prefix))

    @staticmethod
    def _key(account: str, ip: str) -> str:
        return f"login:{account.strip().lower()}|{ip}"

    async def hit(self, account: str, ip: str) -> None:
        allowed, retry_after = await self._limiter.hit(self._key(account, ip))
        if not allowed:
            header = retry_after_header(retry_after)
            raise LimitExceeded(
                f"登录尝试过于频繁, 请 {header} 秒后再试", headers={"Retry-After": header}
            )

    async def reset(self, account: str, ip: str) -> None:
        await self._limiter.reset(self._key(account, ip))

    async def close(self) -> None:
        await self._limiter.close()

"""Signed access tokens (HS256/384/512 JWT via pyjwt) with luser's error mapping.

Decoding failures become ``TokenExpired`` (the only one a client should answer by
refreshing) or ``InvalidToken`` (forged, malformed, wrong algorithm, wrong issuer).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import jwt

from .errors import ConfigError, InvalidToken, TokenExpired
from .utils.time import utc_now

__all__ = ["JwtCodec"]

_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
_RESERVED = frozenset({"sub", "iat", "nbf", "exp", "iss", "jti"})


def _seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class JwtCodec:
    """Encode and decode tokens for one secret, algorithm and issuer."""

    def __init__(
        self,
        secret: str | bytes,
        algorithm: str = "HS256",
        issuer: str | None = "luser",
        access_ttl: int | float | timedelta = 900,
        leeway: int | float | timedelta = 10,
    ) -> None:
        if not secret:
            raise ConfigError("JWT 密钥不能为空", field="jwt.secret")
        if algorithm not in _ALGORITHMS:
            # Only HMAC: a fixed allow-list is what stops "alg: none" and key-confusion attacks.
            raise ConfigError(f"不支持的 JWT 算法: {algorithm}", field="jwt.algorithm")
        self._secret = secret
        self.algorithm = algorithm
        self.issuer = issuer
        self.access_ttl = _seconds(access_ttl)
        self.leeway = _seconds(leeway)

    def __repr__(self) -> str:  # never show the secret
        return f"JwtCodec(algorithm={self.algorithm!r}, issuer={self.issuer!r})"

    def encode(
        self,
        subject: str | int,
        claims: Mapping[str, Any] | None = None,
        *,
        ttl: int | float | timedelta | None = None,
    ) -> str:
        """A token for ``subject`` (stored as a string ``sub``) carrying extra ``claims``."""
        extra = dict(claims or {})
        clash = _RESERVED & extra.keys()
        if clash:
            raise ValueError(f"reserved JWT claims cannot be overridden: {sorted(clash)}")
        now = utc_now()
        payload: dict[str, Any] = {
            **extra,
            "sub": str(subject),
            "iat": now,
            "exp": now + timedelta(seconds=self.access_ttl if ttl is None else _seconds(ttl)),
            "jti": uuid.uuid4().hex,
        }
        if self.issuer:
            payload["iss"] = self.issuer
        return jwt.encode(payload, self._secret, algorithm=self.algorithm)

    def decode(self, token: str) -> dict[str, Any]:
        """The verified claims, or TokenExpired / InvalidToken (original error chained)."""
        required = ["exp", "iat", "sub"] + (["iss"] if self.issuer else [])
        try:
            return jwt.decode(
                token,
                self._secret,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": required},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpired() from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidToken() from exc

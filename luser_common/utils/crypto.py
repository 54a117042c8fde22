"""Random tokens, HMAC-SHA256 and timing-safe comparison."""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["constant_time_equals", "hmac_sha256", "hmac_sha256_hex", "random_token", "sha256_hex"]


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def random_token(nbytes: int = 32) -> str:
    """A URL-safe token carrying ``nbytes`` random bytes (about 1.3 characters per byte)."""
    if nbytes < 16:
        raise ValueError("random_token needs at least 16 bytes of entropy")
    return secrets.token_urlsafe(nbytes)


def hmac_sha256(key: str | bytes, message: str | bytes) -> bytes:
    return hmac.new(_bytes(key), _bytes(message), hashlib.sha256).digest()


def hmac_sha256_hex(key: str | bytes, message: str | bytes) -> str:
    return hmac.new(_bytes(key), _bytes(message), hashlib.sha256).hexdigest()


def sha256_hex(data: str | bytes) -> str:
    return hashlib.sha256(_bytes(data)).hexdigest()


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    """Compare secrets without leaking the matching prefix length through timing."""
    # compare_digest rejects non-ASCII str, so compare UTF-8 bytes instead.
    return hmac.compare_digest(_bytes(a), _bytes(b))

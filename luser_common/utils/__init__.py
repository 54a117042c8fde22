"""Small helpers: time, passwords, tokens and HMAC, validators, masking, logging."""

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from .crypto import constant_time_equals, hmac_sha256, hmac_sha256_hex, random_token, sha256_hex
from .logging import JsonFormatter, PlainFormatter, RequestIdFilter, configure_logging
from .masking import SecretUrlFilter, mask_email, mask_phone, mask_url_secrets
from .time import SHANGHAI, ensure_utc, format_shanghai, iso_z, parse_datetime, utc_now
from .validators import (
    is_email,
    is_mainland_mobile,
    normalize_mobile,
    validate_password_strength,
)

if _TYPE_CHECKING:
    from .passwords import hash_password, needs_rehash, verify_password


# The password helpers need argon2 (the service extra): imported on first use.
_LAZY = {"hash_password": "passwords", "needs_rehash": "passwords", "verify_password": "passwords"}


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        from . import passwords

        return getattr(passwords, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SHANGHAI",
    "JsonFormatter",
    "PlainFormatter",
    "RequestIdFilter",
    "SecretUrlFilter",
    "configure_logging",
    "constant_time_equals",
    "ensure_utc",
    "format_shanghai",
    "hash_password",
    "hmac_sha256",
    "hmac_sha256_hex",
    "is_email",
    "is_mainland_mobile",
    "iso_z",
    "mask_email",
    "mask_phone",
    "mask_url_secrets",
    "needs_rehash",
    "normalize_mobile",
    "parse_datetime",
    "random_token",
    "sha256_hex",
    "utc_now",
    "validate_password_strength",
    "verify_password",
]

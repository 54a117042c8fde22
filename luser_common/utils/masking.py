"""Hide most of a phone number or e-mail address, or the secrets in a URL, before it
is shown or logged."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

from .validators import normalize_mobile

__all__ = ["SECRET_PARAM_WORDS", "SecretUrlFilter", "mask_email", "mask_phone", "mask_url_secrets"]

# A query parameter is secret when its name, or one of its _/- separated words, is one of
# these (``token``, ``callback_token``, ``X-Api-Key``, ``sign``, ``access_key_secret``).
SECRET_PARAM_WORDS = frozenset(
    {
        "token",
        "secret",
        "sign",
        "sig",
        "signature",
        "key",
        "apikey",
        "password",
        "passwd",
        "pwd",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "code",
        "ticket",
        "session",
    }
)
MASK = "***"
_PARAM = re.compile(r"([?&;])([^=&;#]*)=([^&;#]*)")


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_PARAM_WORDS or any(
        word in SECRET_PARAM_WORDS for word in re.split(r"[^a-z0-9]+", lowered)
    )


def mask_url_secrets(url: str) -> str:
    """``/cb?token=abc&id=7`` -> ``/cb?token=***&id=7``: the value of every query
    parameter whose name says it is secret is replaced; the rest stays as sent."""
    if "=" not in url:
        return url

    def mask(match: re.Match[str]) -> str:
        sep, name, value = match.groups()
        if value and _is_secret_name(unquote_plus(name)):
            return f"{sep}{name}={MASK}"
        return match.group(0)

    head, hashmark, fragment = url.partition("#")
    if "?" not in head:
        return url
    path, _, query = head.partition("?")
    masked = _PARAM.sub(mask, "?" + query)
    return path + masked + hashmark + fragment


def mask_phone(value: str) -> str:
    """``13800138000`` -> ``138****8000``; other shapes keep only their last 4 characters."""
    mobile = normalize_mobile(value) if value else None
    if mobile:
        return f"{mobile[:3]}****{mobile[-4:]}"
    if not value or len(value) <= 4:
        return "****"
    return f"****{value[-4:]}"


def mask_email(value: str) -> str:
    """``alice@x.com`` -> ``a***@x.com``."""
    if not value or value.count("@") != 1:
        return "***"
    local, domain = value.split("@")
    if not local or not domain:
        return "***"
    return f"{local[0]}***@{domain}"


class SecretUrlFilter(logging.Filter):
    """Masks secret query parameters in the URLs a log record carries.

    Put it on the access loggers (``uvicorn.access``, ``luser.access``): their records
    hold the request path with its query string as an argument.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_masked(arg) for arg in record.args)
        elif isinstance(record.msg, str):
            record.msg = _masked(record.msg)
        return True


def _masked(value: object) -> object:
    return mask_url_secrets(value) if isinstance(value, str) and "?" in value else value

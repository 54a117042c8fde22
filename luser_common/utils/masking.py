"""Hide most of a phone number or e-mail address before it is shown or logged."""

from __future__ import annotations

from .validators import normalize_mobile

__all__ = ["mask_email", "mask_phone"]


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

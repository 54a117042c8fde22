"""Input checks for the values people type: mainland mobile numbers, e-mail, passwords."""

from __future__ import annotations

import re

from ..errors import ValidationError

__all__ = [
    "is_email",
    "is_mainland_mobile",
    "normalize_mobile",
    "validate_password_strength",
]

_MOBILE = re.compile(r"(?:\+?86)?(1[3-9]\d{9})")
# How people group a number when they type it: "+86 138 0013 8000", "138-0013-8000".
_GROUPING = re.compile(r"[ \t\-\u00a0\u3000]")
# Deliberately simple: dot-atom local part and LDH labels. Anything rarer is not worth
# accepting for sign-up; a confirmation mail is the real check.
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_EMAIL_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_TLD = re.compile(r"[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59}")

PASSWORD_MIN = 8
PASSWORD_MAX = 128


def normalize_mobile(value: str) -> str | None:
    """The 11-digit form of a mainland mobile number (``+86`` and the spaces or hyphens
    that group its digits dropped), or None."""
    if not isinstance(value, str):
        return None
    match = _MOBILE.fullmatch(_GROUPING.sub("", value))
    return match.group(1) if match else None


def is_mainland_mobile(value: str) -> bool:
    return normalize_mobile(value) is not None


def is_email(value: str) -> bool:
    if not isinstance(value, str) or len(value) > 254 or value.count("@") != 1:
        return False
    local, domain = value.split("@")
    if not local or len(local) > 64 or not _EMAIL_LOCAL.fullmatch(local):
        return False
    labels = domain.split(".")
    if len(labels) < 2 or not _TLD.fullmatch(labels[-1]):
        return False
    return all(_EMAIL_LABEL.fullmatch(label) for label in labels)


def validate_password_strength(password: str, field: str = "password") -> ValidationError | None:
    """None when ``password`` is acceptable, else the ValidationError to raise."""
    if len(password) < PASSWORD_MIN:
        return ValidationError(f"密码至少需要 {PASSWORD_MIN} 位", field=field)
    if len(password) > PASSWORD_MAX:
        return ValidationError(f"密码不能超过 {PASSWORD_MAX} 位", field=field)
    has_letter = any(ch.isascii() and ch.isalpha() for ch in password)
    has_digit = any(ch.isdigit() for ch in password)
    if not (has_letter and has_digit):
        return ValidationError("密码必须同时包含字母和数字", field=field)
    return None

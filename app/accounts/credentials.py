"""Input rules for accounts: emails, mainland mobile numbers and password strength."""

from __future__ import annotations

from luser_common import ValidationError
from luser_common.utils import is_email, normalize_mobile, validate_password_strength

# The most common leaked passwords that pass the letters+digits rule.
_COMMON = frozenset(
    {
        "password1",
        "password123",
        "passw0rd",
        "qwerty123",
        "abc12345",
        "a1234567",
        "abcd1234",
        "iloveyou1",
        "admin123",
        "admin1234",
        "1qaz2wsx",
        "qwe123456",
        "a123456789",
        "woaini1314",
    }
)


def normalize_email(value: str, field: str = "email") -> str:
    email = value.strip().lower()
    if not is_email(email):
        raise ValidationError("邮箱格式不正确", field=field)
    return email


def normalize_phone(value: str, field: str = "phone") -> str:
    phone = normalize_mobile(value)
    if phone is None:
        raise ValidationError("手机号格式不正确 (需要中国大陆 11 位手机号)", field=field)
    return phone


def normalize_account(value: str, field: str = "account") -> tuple[str, str]:
    """``("email", ...)`` or ``("phone", ...)`` for a login name."""
    if "@" in value:
        return "email", normalize_email(value, field)
    return "phone", normalize_phone(value, field)


def account_name(email: str | None, phone: str | None) -> str:
    """The part of an account a password must not contain: the e-mail's local part
    or the phone number."""
    return (email or "").split("@", 1)[0] or (phone or "")


def check_password_strength(password: str, field: str = "password", account: str = "") -> None:
    """Refuse a weak password with a message that says what is wrong with it."""
    error = validate_password_strength(password, field)
    if error is not None:
        raise error
    lowered = password.lower()
    if len(account) >= 4 and account.lower() in lowered:
        raise ValidationError("密码过于简单: 不能包含账号名", field=field)
    if lowered in _COMMON:
        raise ValidationError("密码过于简单: 这是最常见的泄露密码之一", field=field)
    if len(set(password)) < 4:
        raise ValidationError("密码过于简单: 至少需要 4 个不同的字符", field=field)

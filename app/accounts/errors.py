"""The accounts' errors: luser_common classes with a more precise stable code."""

from __future__ import annotations

from luser_common import Forbidden, Unauthorized


class InvalidCredentials(Unauthorized):
    """Wrong password and unknown account look the same, so accounts cannot be enumerated."""

    code = "INVALID_CREDENTIALS"
    default_message = "账号或密码错误"


class AccountDisabled(Forbidden):
    code = "ACCOUNT_DISABLED"
    default_message = "账号已被禁用"

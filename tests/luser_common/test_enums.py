"""Domain enums: lower-case string values that compare equal to plain strings."""

from __future__ import annotations

import pytest

from luser_common import enums

EXPECTED = {
    "UserStatus": {"active", "disabled"},
    "UserRole": {"user", "admin"},
    "VideoStatus": {"draft", "processing", "published", "offline"},
    "OrderStatus": {"pending", "paid", "refunded", "closed", "expired"},
    "PaymentChannel": {"alipay", "wechat"},
    "PaymentStatus": {"pending", "succeeded", "failed", "closed", "refunded"},
    "SubscriptionStatus": {"active", "expired", "revoked"},
    "VodProviderName": {"tencent", "aliyun"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_values(name: str) -> None:
    cls = getattr(enums, name)
    assert {member.value for member in cls} == EXPECTED[name]
    for member in cls:
        assert member == member.value and str(member) == member.value
        assert cls(member.value) is member


def test_all_listed() -> None:
    assert set(enums.__all__) == set(EXPECTED)

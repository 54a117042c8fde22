"""Fixtures: the two provider stubs on 127.0.0.1, with proxy variables cleared."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.sandbox.vod import PROXY_ENV_VARS, AliyunVodStub, TencentVodStub


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # Both SDKs read proxy variables; a proxy must never carry a stub request elsewhere.
    for name in PROXY_ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def tencent_stub() -> Iterator[TencentVodStub]:
    with TencentVodStub() as stub:
        yield stub


@pytest.fixture
def aliyun_stub() -> Iterator[AliyunVodStub]:
    with AliyunVodStub() as stub:
        yield stub

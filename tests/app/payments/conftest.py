"""Fixtures for the payment provider tests: generated keys and 127.0.0.1 stubs.

An autouse guard refuses any connection or DNS lookup that is not loopback, so
no test can reach a real provider host even by mistake.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from app.payments import AlipayProvider, WechatPayProvider
from app.sandbox.payments import AlipayStub, KeyPair, WechatPayStub, generate_keypair

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and address[0] not in _LOOPBACK:
            raise AssertionError(f"test tried to reach {address!r}")
        return real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in _LOOPBACK and host is not None:
            raise AssertionError(f"test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(scope="session")
def keys() -> dict[str, KeyPair]:
    """Key pairs generated once per session: app/merchant side and provider side."""
    return {name: generate_keypair() for name in ("app", "alipay", "merchant", "platform", "evil")}


@pytest.fixture
def alipay_stub(keys: dict[str, KeyPair]) -> Iterator[AlipayStub]:
    with AlipayStub(app_keys=keys["app"], alipay_keys=keys["alipay"]) as stub:
        yield stub


@pytest.fixture
def alipay(alipay_stub: AlipayStub) -> AlipayProvider:
    return AlipayProvider(alipay_stub.config())


@pytest.fixture
def wechat_stub(keys: dict[str, KeyPair]) -> Iterator[WechatPayStub]:
    with WechatPayStub(merchant_keys=keys["merchant"], platform_keys=keys["platform"]) as stub:
        yield stub


@pytest.fixture
def wechat(wechat_stub: WechatPayStub) -> WechatPayProvider:
    return WechatPayProvider(wechat_stub.config())


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

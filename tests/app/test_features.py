"""Config keys that switch behaviour: features.registration, features.open_api and
server.log_level, through the real app and its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from app import create_app
from app.settings import AppConfig, FeaturesConfig

from .conftest import PASSWORD, detached_pool, error_code, unique_email


async def _client(config: AppConfig) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(config)
    async with detached_pool(config), app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("10.0.0.9", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


@pytest.fixture
async def features_off(app_config: AppConfig) -> AsyncIterator[httpx.AsyncClient]:
    off = FeaturesConfig(registration=False, open_api=False)
    config = app_config.model_copy(update={"features": off})
    async for client in _client(config):
        yield client


async def test_registration_false_refuses_sign_ups(features_off: httpx.AsyncClient) -> None:
    r = await features_off.post(
        "/api/auth/register", json={"email": unique_email(), "password": PASSWORD}
    )
    assert r.status_code == 403 and error_code(r) == "REGISTRATION_CLOSED", r.text
    assert r.json()["error"]["message"] == "暂不开放注册"


async def test_open_api_false_refuses_partner_and_token_routes(
    features_off: httpx.AsyncClient,
) -> None:
    for path in ("/open/v1/videos", "/api/tokens"):
        r = await features_off.get(path, headers={"Authorization": "Bearer sk-whatever"})
        assert r.status_code == 403 and error_code(r) == "OPEN_API_DISABLED", (path, r.text)
    assert (await features_off.get("/health")).status_code == 200


async def test_features_on_by_default(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/auth/register", json={"email": unique_email(), "password": PASSWORD})
    assert r.status_code == 201, r.text
    r = await api.get("/open/v1/videos", headers={"Authorization": "Bearer sk-whatever"})
    assert error_code(r) != "OPEN_API_DISABLED"


async def test_server_log_level_sets_the_service_loggers(app_config: AppConfig) -> None:
    logger = logging.getLogger("luser")
    before = logger.level
    logger.setLevel(logging.DEBUG)  # what the lifespan must override
    server = app_config.server.model_copy(update={"log_level": "warning"})
    try:
        async for _ in _client(app_config.model_copy(update={"server": server})):
            assert logger.getEffectiveLevel() == logging.WARNING
            assert not logging.getLogger("luser.app").isEnabledFor(logging.INFO)
    finally:
        logger.setLevel(before)

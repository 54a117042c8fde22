"""cors_middleware: preflight answered, credentials with '*' refused."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from luser_common import ConfigError
from luser_common.middleware import cors_middleware

from .conftest import make_app


def _client(**kwargs: object) -> TestClient:
    return TestClient(make_app(cors_middleware(**kwargs)))  # type: ignore[arg-type]


def test_preflight_allowed_origin() -> None:
    with _client(origins=["https://app.example.com"], credentials=True) as c:
        resp = c.options(
            "/echo",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "Authorization, Content-Type",
            },
        )
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] == "https://app.example.com"
    assert resp.headers["access-control-allow-credentials"] == "true"
    assert "POST" in resp.headers["access-control-allow-methods"]


def test_preflight_disallowed_origin() -> None:
    with _client(origins=["https://app.example.com"]) as c:
        resp = c.options(
            "/echo",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
    assert resp.status_code == 400
    assert "access-control-allow-origin" not in resp.headers


def test_simple_request_exposes_request_id() -> None:
    with _client(origins=["https://app.example.com"]) as c:
        resp = c.get("/rid", headers={"Origin": "https://app.example.com"})
    assert "X-Request-ID" in resp.headers["access-control-expose-headers"]


def test_wildcard_with_credentials_refused() -> None:
    with pytest.raises(ConfigError):
        cors_middleware(origins=["*"], credentials=True)

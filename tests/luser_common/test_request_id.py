"""RequestIdMiddleware: sane incoming ids echoed, anything else replaced."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from luser_common.context import current_request_id
from luser_common.middleware import is_valid_request_id


def test_valid_incoming_id_is_echoed_and_in_context(client: TestClient) -> None:
    resp = client.get("/rid", headers={"X-Request-ID": "abc.DEF_123-x"})
    assert resp.headers["x-request-id"] == "abc.DEF_123-x"
    assert resp.json()["data"] == {"ctx": "abc.DEF_123-x", "state": "abc.DEF_123-x"}


def test_valid_id_appears_in_error_envelope(client: TestClient) -> None:
    resp = client.get("/missing", headers={"X-Request-ID": "req-42"})
    assert resp.json()["error"]["request_id"] == "req-42"
    assert resp.headers["x-request-id"] == "req-42"


@pytest.mark.parametrize(
    "bad", ["x" * 65, "has space", "semi;colon", "new\\nline", "ünïcode".encode(), "<script>", ""]
)
def test_invalid_or_overlong_ids_are_replaced(client: TestClient, bad: str | bytes) -> None:
    resp = client.get("/rid", headers={"X-Request-ID": bad})
    new = resp.headers["x-request-id"]
    assert new != bad and re.fullmatch(r"[0-9a-f]{32}", new)
    assert resp.json()["data"]["ctx"] == new


def test_missing_id_is_generated_per_request(client: TestClient) -> None:
    first = client.get("/rid").headers["x-request-id"]
    second = client.get("/rid").headers["x-request-id"]
    assert first != second


def test_404_from_router_carries_request_id(client: TestClient) -> None:
    resp = client.get("/nowhere", headers={"X-Request-ID": "r-404"})
    assert resp.json()["error"]["request_id"] == "r-404"


def test_context_is_reset_after_request(client: TestClient) -> None:
    client.get("/rid", headers={"X-Request-ID": "leak-check"})
    assert current_request_id() is None


def test_validator_bounds() -> None:
    assert is_valid_request_id("a")
    assert is_valid_request_id("a" * 64)
    assert not is_valid_request_id("a" * 65)
    assert not is_valid_request_id(None)

"""Hostile JSON on every JSON route, over real HTTP on one keep-alive connection.

Nesting 5,000-30,000 deep raised RecursionError and a 5,000-digit number ValueError:
both were a 500, and uvicorn closed the connection after each. Every JSON route,
the unauthenticated login included, must answer 400 in the envelope and keep the
connection open for the next request.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import SecretStr

from app.settings import AppConfig
from app.web.operation import operations_of
from luser_common.http import MAX_JSON_DEPTH, MAX_NUMBER_LENGTH

from .conftest import TENCENT_CALLBACK_TOKEN, detached_pool
from .live_service import live_service, own_database, sign_up


def _nested(depth: int) -> bytes:
    return ("[" * depth + "]" * depth).encode()


def _long_number(digits: int) -> bytes:
    return b'{"amount": ' + b"7" * digits + b"}"


HOSTILE = {
    "nested-33": _nested(MAX_JSON_DEPTH + 1),
    "nested-5000": _nested(5_000),
    "nested-30000": _nested(30_000),
    "objects-5000": b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    "number-5000-digits": _long_number(5_000),
    "number-limit-plus-1": _long_number(MAX_NUMBER_LENGTH + 1),
    "nan": b'{"amount": NaN}',
}


@dataclass
class Live:
    host: str
    port: int
    admin_jwt: str
    json_routes: list[tuple[str, str]]  # (method, path with ids filled in)


@pytest.fixture(scope="module")
async def detached(app_config: AppConfig) -> AsyncIterator[None]:
    async with detached_pool(app_config):
        yield


@pytest.fixture(scope="module")
def live(app_config: AppConfig, detached: None) -> Iterator[Live]:
    with own_database() as url:
        database = app_config.database.model_copy(update={"url": SecretStr(url)})
        with live_service(app_config.model_copy(update={"database": database})) as (base, app):
            with httpx.Client(base_url=base, timeout=30) as client:
                _, admin_jwt = sign_up(client, url, admin=True)
            routes = [
                (op.method, op.path.replace("{id}", "1"))
                for op in operations_of(app.routes)
                if op.body is not None
            ]
            parts = urlsplit(base)
            assert parts.hostname and parts.port
            yield Live(parts.hostname, parts.port, admin_jwt, routes)


def _send(
    conn: http.client.HTTPConnection, method: str, path: str, body: bytes, jwt: str
) -> tuple[int, dict[str, object], bool]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {jwt}"}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    payload = json.loads(response.read())
    return response.status, payload, bool(response.will_close)


def test_json_routes_exist(live: Live) -> None:
    paths = {path for _, path in live.json_routes}
    assert {"/api/auth/login", "/api/auth/register", "/api/admin/categories"} <= paths
    assert len(live.json_routes) >= 25


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_json_is_400_on_every_route_and_keeps_the_connection(live: Live, kind: str) -> None:
    conn = http.client.HTTPConnection(live.host, live.port, timeout=30)
    try:
        conn.connect()
        socket = conn.sock
        answers: dict[str, tuple[int, object]] = {}
        for method, path in live.json_routes:
            status, payload, closes = _send(conn, method, path, HOSTILE[kind], live.admin_jwt)
            error = payload.get("error")
            code = error.get("code") if isinstance(error, dict) else None
            answers[f"{method} {path}"] = (status, code)
            assert not closes, f"{method} {path} closed the connection ({status})"
            assert conn.sock is socket, f"{method} {path}: the connection was replaced"
        wrong = {k: v for k, v in answers.items() if v != (400, "DESERIALIZATION_ERROR")}
        assert not wrong, wrong
    finally:
        conn.close()


def test_login_refuses_deep_json_without_credentials(live: Live) -> None:
    # The unauthenticated door: no token at all, deep JSON, then a normal login attempt
    # on the same connection.
    conn = http.client.HTTPConnection(live.host, live.port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"}
        conn.request("POST", "/api/auth/login", body=_nested(30_000), headers=headers)
        first = conn.getresponse()
        assert first.status == 400 and not first.will_close
        assert json.loads(first.read())["error"]["code"] == "DESERIALIZATION_ERROR"
        wrong = json.dumps({"account": "nobody@example.com", "password": "x1y2z3w4"})
        conn.request("POST", "/api/auth/login", body=wrong, headers=headers)
        second = conn.getresponse()
        assert second.status == 401
        assert json.loads(second.read())["error"]["code"] == "INVALID_CREDENTIALS"
    finally:
        conn.close()


@pytest.mark.parametrize("kind", ["nested-30000", "number-5000-digits"])
def test_vod_callback_with_a_valid_token_refuses_hostile_json(live: Live, kind: str) -> None:
    # A provider callback is a JSON route too; past its token check it decoded with
    # json.loads, where RecursionError escaped the ValueError handler.
    conn = http.client.HTTPConnection(live.host, live.port, timeout=30)
    try:
        path = f"/api/vod/callbacks/tencent?token={TENCENT_CALLBACK_TOKEN}"
        status, payload, closes = _send(conn, "POST", path, HOSTILE[kind], live.admin_jwt)
        error = payload.get("error")
        assert status == 400 and not closes, payload
        assert isinstance(error, dict) and error["code"] == "DESERIALIZATION_ERROR"
    finally:
        conn.close()

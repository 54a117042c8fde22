"""Every operation of the app documents its success response in ``/openapi.json``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from app import create_app
from app.settings import AppConfig
from app.web.operation import Call, Operation, operation

from .response_shapes import assert_matches


async def _document() -> dict[str, Any]:
    app = create_app(AppConfig())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


def _undocumented(doc: dict[str, Any]) -> list[str]:
    """Operations with no 2xx response, or a 2xx (other than 204) without a schema."""
    missing = []
    for path, methods in doc["paths"].items():
        for method, spec in methods.items():
            name = f"{method.upper()} {path}"
            ok = {s: r for s, r in spec["responses"].items() if s.startswith("2")}
            if not ok:
                missing.append(f"{name}: no 2xx response")
            for status, response in ok.items():
                content = response.get("content")
                if status == "204":
                    if content:
                        missing.append(f"{name}: 204 with a body")
                    continue
                if not content:
                    missing.append(f"{name}: {status} without content")
                    continue
                for media, body in content.items():
                    schema = body.get("schema") or {}
                    if media == "application/json":
                        schema = schema.get("properties", {}).get("data") or {}
                    if not schema:
                        missing.append(f"{name}: {status} {media} without a schema")
    return missing


async def test_every_operation_documents_its_success_response() -> None:
    doc = await _document()
    assert len(doc["paths"]) > 50
    assert _undocumented(doc) == []
    # The open API's partner answers are described field by field.
    play = doc["paths"]["/open/v1/videos/{id}/play_url"]["get"]["responses"]["200"]
    data = play["content"]["application/json"]["schema"]["properties"]["data"]
    assert data == {"$ref": "#/components/schemas/PlayUrlOut"}
    assert set(doc["components"]["schemas"]["PlayUrlOut"]["properties"]) == {
        "video_id",
        "url",
        "expires_at",
    }
    # A provider's own reply format is documented as such.
    alipay = doc["paths"]["/api/payments/notify/{provider}"]["post"]["responses"]["200"]
    assert alipay["content"]["text/plain"]["schema"]["enum"] == ["success", "failure"]


def test_the_walk_finds_an_undocumented_response() -> None:
    doc = {
        "paths": {
            "/a": {
                "get": {
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {"schema": {"properties": {"data": {}}}}
                            }
                        }
                    }
                }
            },
            "/b": {"delete": {"responses": {"204": {"description": "ok"}}}},
            "/c": {"post": {"responses": {"default": {}}}},
        }
    }
    assert _undocumented(doc) == [
        "GET /a: 200 application/json without a schema",
        "POST /c: no 2xx response",
    ]


class Thing(BaseModel):
    id: int
    name: str


@operation("GET", "/things/{id}", summary="a thing", tag="t", response=Thing)
async def get_thing(call: Call) -> Any:
    return {"id": 1, "name": "x"}


def _answer(data: Any) -> httpx.Response:
    return httpx.Response(200, json={"success": True, "data": data})


@pytest.mark.parametrize(
    "data",
    [
        {"id": 1},  # a documented key is missing
        {"id": 1, "name": "x", "secret": "y"},  # a key nobody documented
        {"id": "one", "name": "x"},  # the wrong type
    ],
)
def test_the_shape_check_refuses_an_answer_unlike_its_model(data: Any) -> None:
    with pytest.raises((AssertionError, ValueError)):
        assert_matches(get_thing, _answer(data))


def test_the_shape_check_accepts_the_documented_answer() -> None:
    op: Operation = get_thing
    assert_matches(op, _answer({"id": 1, "name": "x"}))

"""The envelope over HTTP, against a real Starlette app: handlers, body and query parsing."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum, StrEnum

import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from luser_common import Page, SerializationError, exception_handlers, success
from luser_common.errors import NotFound
from luser_common.http import MAX_JSON_DEPTH, MAX_NUMBER_LENGTH, decode_json, error_response

from .conftest import make_app

JSON = {"content-type": "application/json"}


def _assert_error(resp, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert body["timestamp"].endswith("Z")
    assert body["error"]["request_id"] == resp.headers["x-request-id"]
    return body["error"]


def test_success_envelope(client: TestClient) -> None:
    resp = client.post("/echo", json={"name": "ann", "age": 3})
    assert resp.status_code == 200
    body = resp.json()
    assert body["success"] is True
    assert body["data"] == {"name": "ann", "age": 3, "address": None}
    assert body["timestamp"].endswith("Z")


def test_malformed_json_is_400(client: TestClient) -> None:
    err = _assert_error(
        client.post("/echo", content=b'{"name": ', headers=JSON), 400, "DESERIALIZATION_ERROR"
    )
    assert "JSON" in err["message"]


def test_invalid_utf8_is_400(client: TestClient) -> None:
    _assert_error(
        client.post("/echo", content=b'{"name": "\xff"}', headers=JSON),
        400,
        "DESERIALIZATION_ERROR",
    )


def test_empty_body_is_400(client: TestClient) -> None:
    _assert_error(client.post("/echo", content=b"", headers=JSON), 400, "DESERIALIZATION_ERROR")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_415(client: TestClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    resp = client.post("/echo", content=b'{"name": "a", "age": 1}', headers=headers)
    _assert_error(resp, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_json_suffix_and_charset_are_accepted(client: TestClient) -> None:
    for ct in ("application/json; charset=utf-8", "application/merge-patch+json"):
        resp = client.post("/echo", content=b'{"name":"a","age":1}', headers={"content-type": ct})
        assert resp.status_code == 200, ct


def test_oversized_body_is_413(client: TestClient) -> None:
    err = _assert_error(client.post("/raw", json={"x": "a" * 100}), 413, "PAYLOAD_TOO_LARGE")
    assert err["details"] == {"limit": 64}


def test_oversized_chunked_body_is_413(client: TestClient) -> None:
    # No Content-Length: the limit must hold while streaming.
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"x": "'
        for _ in range(10):
            yield b"a" * 20
        yield b'"}'

    _assert_error(client.post("/raw", content=chunks(), headers=JSON), 413, "PAYLOAD_TOO_LARGE")


def test_body_within_limit(client: TestClient) -> None:
    assert client.post("/raw", json={"x": 1}).json()["data"] == {"data": {"x": 1}, "length": 7}


def test_starlette_max_body_size_becomes_envelope() -> None:
    async def read(request: Request) -> Response:
        return success(len(await request.body()))

    app = Starlette(
        routes=[Route("/r", read, methods=["POST"])],
        exception_handlers=exception_handlers,
        max_body_size=10,
    )
    with TestClient(app) as c:
        # Streamed past the limit inside the endpoint: our HTTPException handler answers.
        streamed = c.post("/r", content=iter([b"x" * 8, b"x" * 8]))
        # An honest Content-Length over the limit: Starlette itself answers (plain text).
        declared = c.post("/r", content=b"x" * 100)
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert declared.status_code == 413


@pytest.mark.parametrize("depth", [33, 1_000, 5_000, 30_000])
@pytest.mark.parametrize("shape", ["[{}]", '{{"a":{}}}'])
def test_deeply_nested_json_is_400(client: TestClient, depth: int, shape: str) -> None:
    # json.loads raised RecursionError past ~1,000 levels: a 500 on every JSON route.
    body = "0"
    for _ in range(depth):
        body = shape.format(body)
    err = _assert_error(
        client.post("/raw_big", content=body.encode(), headers=JSON), 400, "DESERIALIZATION_ERROR"
    )
    assert "嵌套过深" in err["message"]
    assert err["details"] == {"limit": MAX_JSON_DEPTH}


def test_nesting_up_to_the_limit_is_accepted(client: TestClient) -> None:
    body = "0"
    for _ in range(MAX_JSON_DEPTH):
        body = f"[{body}]"
    resp = client.post("/raw_big", content=body.encode(), headers=JSON)
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(
    "literal",
    ["1" * 5_000, "1" * (MAX_NUMBER_LENGTH + 1), "0." + "1" * 5_000, "-" + "9" * 70],
    ids=["5000-digits", "limit-plus-1", "5000-decimals", "negative-70-digits"],
)
def test_overlong_number_is_400(client: TestClient, literal: str) -> None:
    # 5,000 digits broke int()'s 4,300-digit guard: ValueError, a 500.
    resp = client.post("/echo", content=f'{{"name":"a","age":{literal}}}'.encode(), headers=JSON)
    err = _assert_error(resp, 400, "DESERIALIZATION_ERROR")
    assert "数字过长" in err["message"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_number_is_400(client: TestClient, literal: str) -> None:
    resp = client.post("/raw_big", content=f'{{"x":{literal}}}'.encode(), headers=JSON)
    _assert_error(resp, 400, "DESERIALIZATION_ERROR")


def test_numbers_within_limits_are_decoded() -> None:
    assert decode_json(b'{"a":9223372036854775807,"b":-1.5e3,"c":[1,[2]]}') == {
        "a": 2**63 - 1,
        "b": -1500.0,
        "c": [1, [2]],
    }
    assert decode_json("\ufeff[1]".encode()) == [1]  # a UTF-8 BOM is tolerated


def test_validation_error_is_422_with_nested_field(client: TestClient) -> None:
    address = {"city": "x", "zip_code": "1"}
    resp = client.post("/echo", json={"name": "a", "age": 1, "address": address})
    err = _assert_error(resp, 422, "VALIDATION_ERROR")
    assert err["field"] == "address.zip_code"
    assert err["details"][0]["field"] == "address.zip_code"


def test_validation_error_top_level(client: TestClient) -> None:
    resp = client.post("/echo", json={"name": "a", "age": -1})
    err = _assert_error(resp, 422, "VALIDATION_ERROR")
    assert err["field"] == "age"


def test_parse_query(client: TestClient) -> None:
    resp = client.get("/list", params=[("page", "2"), ("tags", "a"), ("tags", "b")])
    assert resp.json()["data"] == {"page": 2, "tags": ["a", "b"], "q": None}
    one = client.get("/list", params={"tags": "solo"})
    assert one.json()["data"]["tags"] == ["solo"]
    err = _assert_error(client.get("/list", params={"page": "zero"}), 422, "VALIDATION_ERROR")
    assert err["field"] == "page"


def test_unknown_route_is_404_envelope(client: TestClient) -> None:
    err = _assert_error(client.get("/nope"), 404, "NOT_FOUND")
    assert err["message"] == "请求的资源不存在"


def test_wrong_method_is_405_envelope_with_allow(client: TestClient) -> None:
    resp = client.get("/echo")
    err = _assert_error(resp, 405, "METHOD_NOT_ALLOWED")
    assert "POST" in resp.headers["allow"]
    assert err["message"] == "不支持该请求方法"


def test_app_error_subtree_handled(client: TestClient) -> None:
    err = _assert_error(client.get("/missing"), 404, "NOT_FOUND")
    assert err["message"] == "视频不存在"
    err = _assert_error(client.get("/details"), 404, "NOT_FOUND")
    assert err["field"] == "user_id" and err["details"] == {"id": 7}


def test_other_http_exception_statuses(client: TestClient) -> None:
    _assert_error(client.get("/teapot"), 418, "IM_A_TEAPOT")
    resp = client.get("/not-modified")
    assert resp.status_code == 304 and resp.content == b""


def test_unexpected_exception_is_generic_500(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="luser.errors"):
        resp = client.get("/boom", headers={"X-Request-ID": "trace-500"})
    err = _assert_error(resp, 500, "INTERNAL_ERROR")
    assert err["message"] == "服务器内部错误"
    assert err["request_id"] == "trace-500"
    assert "hunter2" not in resp.text and "select" not in resp.text
    assert "RuntimeError" not in resp.text
    # ...but the traceback is logged for us.
    record = next(r for r in caplog.records if r.name == "luser.errors")
    assert record.exc_info is not None and "hunter2" in str(record.exc_info[1])


def test_5xx_app_error_logs_traceback_and_keeps_its_message(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="luser.errors"):
        resp = client.get("/db-down")
    err = _assert_error(resp, 503, "DATABASE_UNAVAILABLE")
    assert err["message"] == "数据库暂不可用" and "10.0.0.5" not in resp.text
    record = next(r for r in caplog.records if r.name == "luser.errors")
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1].__cause__, OSError)  # type: ignore[union-attr]


def test_4xx_logs_one_line_without_traceback(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="luser.errors"):
        client.get("/missing")
    records = [r for r in caplog.records if r.name == "luser.errors"]
    assert len(records) == 1 and records[0].exc_info is None
    assert "NOT_FOUND" in records[0].getMessage()


class OrderStatus(StrEnum):
    PAID = "paid"


class Color(Enum):
    RED = "red"


class Item(BaseModel):
    price: Decimal


def test_success_renders_rich_types() -> None:
    uid = uuid.uuid4()
    data = {
        "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "day": date(2026, 1, 2),
        "amount": Decimal("30.00"),
        "id": uid,
        "color": Color.RED,
        "status": OrderStatus.PAID,
        "model": Item(price=Decimal("1.10")),
        "page": Page([1, 2], 1, 2, 5),
    }
    body = json.loads(bytes(success(data, status_code=201).body))
    assert body["data"] == {
        "at": "2026-01-02T03:04:05Z",
        "day": "2026-01-02",
        "amount": "30.00",
        "id": str(uid),
        "color": "red",
        "status": "paid",
        "model": {"price": "1.10"},
        "page": {
            "items": [1, 2],
            "page_number": 1,
            "page_size": 2,
            "total_row": 5,
            "total_page": 3,
        },
    }


def test_success_unencodable_raises_serialization_error() -> None:
    with pytest.raises(SerializationError) as info:
        success({"x": object()})
    assert isinstance(info.value.__cause__, TypeError)


def test_no_body_statuses() -> None:
    assert success(status_code=204).body == b""
    resp = error_response(NotFound(details={"bad": object()}), "r1")
    assert resp.status_code == 404  # unencodable details dropped, not a crash
    assert json.loads(bytes(resp.body))["error"] == {
        "code": "NOT_FOUND",
        "message": "资源不存在",
        "request_id": "r1",
    }


def test_handlers_as_dict_for_starlette_constructor() -> None:
    async def fail(request: Request) -> Response:
        raise NotFound()

    app = Starlette(routes=[Route("/f", fail)], exception_handlers=exception_handlers)
    with TestClient(app) as c:
        resp = c.get("/f")
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "NOT_FOUND"
        assert "request_id" not in resp.json()["error"]  # no RequestIdMiddleware installed


def test_make_app_has_request_ids() -> None:
    with TestClient(make_app()) as c:
        assert c.get("/rid").headers["x-request-id"]

"""The OpenAPI 3.1 document, built from the declared operations and their pydantic models,
and the offline ``/docs`` page that renders it (no CDN: the page ships in ``app/static``)."""

from __future__ import annotations

from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pydantic import BaseModel, TypeAdapter
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app.web.operation import JSON, Operation, operations_of
from app.web.types import MAX_BIGINT

REF = "#/components/schemas/{model}"
_ERROR_TEXT = {
    400: "请求格式错误",
    401: "未登录或令牌无效",
    403: "没有权限",
    404: "资源不存在",
    409: "状态冲突或数据重复",
    413: "请求体过大",
    415: "不是 JSON 请求体",
    422: "参数校验失败",
    429: "请求过于频繁",
    502: "外部服务 (视频点播) 调用失败",
    503: "服务或依赖暂不可用",
}

ERROR_ENVELOPE: dict[str, Any] = {
    "type": "object",
    "required": ["success", "error", "timestamp"],
    "properties": {
        "success": {"const": False},
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "稳定的英文错误码, 如 NOT_FOUND"},
                "message": {"type": "string", "description": "中文错误信息"},
                "request_id": {"type": "string"},
                "field": {"type": "string"},
                "details": {},
            },
        },
        "timestamp": {"type": "string", "format": "date-time"},
    },
}


class _Schemas:
    """Collects component schemas; returns a schema (or ``$ref``) for any type."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {"ErrorEnvelope": ERROR_ENVELOPE}

    def of(self, tp: Any, mode: str) -> dict[str, Any]:
        schema = TypeAdapter(tp).json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
        self.components.update(schema.pop("$defs", {}))
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            self.components[tp.__name__] = schema
            return {"$ref": REF.format(model=tp.__name__)}
        return schema

    def properties(self, model: type[BaseModel]) -> tuple[dict[str, Any], set[str]]:
        schema = model.model_json_schema(ref_template=REF, mode="validation")
        self.components.update(schema.pop("$defs", {}))
        return schema.get("properties", {}), set(schema.get("required", []))


def _app_version() -> str:
    try:
        return version("luser")
    except PackageNotFoundError:
        return "0.0.0"


def _parameters(op: Operation, schemas: _Schemas) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            # ``{id}`` is a row id; other path parts are names (``{provider}``).
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_BIGINT}
            if name == "id"
            else {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,31}$"},
        }
        for name in op.path_params
    ]
    if op.query is not None:
        props, required = schemas.properties(op.query)
        for name, schema in props.items():
            entry: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": schema,
            }
            if "description" in schema:
                entry["description"] = schema["description"]
            params.append(entry)
    return params


_NO_BODY = frozenset({204, 304})


def _error_statuses(op: Operation) -> list[int]:
    statuses = set(op.errors)
    if op.body is not None or op.raw_body:
        statuses |= {400, 413, 415, 422}
    if op.query is not None:
        statuses.add(422)
    if op.access != "public":
        statuses |= {401, 403}
    if op.path_params:
        statuses.add(404)
    return sorted(statuses)


def _responses(op: Operation, schemas: _Schemas) -> dict[str, Any]:
    data = schemas.of(op.response, "serialization") if op.response is not None else {}
    envelope = {
        "type": "object",
        "required": ["success", "data", "timestamp"],
        "properties": {
            "success": {"const": True},
            "data": data,
            "timestamp": {"type": "string", "format": "date-time"},
        },
    }
    error = {"application/json": {"schema": {"$ref": REF.format(model="ErrorEnvelope")}}}
    ok: dict[str, Any] = {"description": "成功"}
    if op.media_type != JSON:  # the handler's own reply in a provider's format
        ok["content"] = {op.media_type: {"schema": data}}
    elif op.status not in _NO_BODY:  # success() sends 204/304 without a body
        ok["content"] = {"application/json": {"schema": envelope}}
    responses: dict[str, Any] = {str(op.status): ok}
    for status in _error_statuses(op):
        responses[str(status)] = {"description": _ERROR_TEXT.get(status, "错误"), "content": error}
    responses["default"] = {"description": "其他错误 (统一错误信封)", "content": error}
    return responses


def _operation(op: Operation, schemas: _Schemas) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": _parameters(op, schemas),
        "responses": _responses(op, schemas),
    }
    if op.handler.__doc__:
        doc["description"] = op.handler.__doc__.strip()
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.of(op.body, "validation")}},
        }
    elif op.raw_body:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    if op.access != "public":
        doc["security"] = [{"bearerAuth": []}]
    return doc


def build_openapi(operations: list[Operation]) -> dict[str, Any]:
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "luser video service",
            "version": _app_version(),
            "description": "视频订阅服务 API. 所有响应都使用统一信封: "
            '成功 `{"success": true, "data": ...}`, 失败 `{"success": false, "error": {...}}`.',
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def docs_routes() -> list[BaseRoute]:
    """``GET /openapi.json`` and ``GET /docs``, both outside the document itself.

    The document covers every operation route of the app, built on first request.
    """
    cache: dict[str, Any] = {}

    async def openapi_json(request: Request) -> Response:
        if "doc" not in cache:
            cache["doc"] = build_openapi(operations_of(request.app.router.routes))
        return JSONResponse(cache["doc"])

    async def docs_page(request: Request) -> Response:
        html = resources.files("app").joinpath("static/docs.html").read_text(encoding="utf-8")
        return HTMLResponse(html)

    return [
        Route("/openapi.json", openapi_json, methods=["GET"], include_in_schema=False),
        Route("/docs", docs_page, methods=["GET"], include_in_schema=False),
    ]

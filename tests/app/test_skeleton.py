"""App skeleton: probes, envelopes, the OpenAPI document and the offline docs page."""

from __future__ import annotations

import gc
import re

import httpx
import pytest
from starlette.applications import Starlette

import luser_db
from app import create_app
from app.files import CONFIG_DIR
from app.lifespan import init_database
from app.settings import AppConfig
from app.web.operation import Call, operation
from luser_common import ConfigError
from luser_config import load_config

from .conftest import detached_pool, error_code


async def test_health_and_ready(api: httpx.AsyncClient) -> None:
    r = await api.get("/health")
    assert r.status_code == 200
    assert r.json()["success"] is True and r.json()["data"] == {"status": "ok"}
    r = await api.get("/ready")
    assert r.status_code == 200 and r.json()["data"]["database"] == "ok"
    assert r.headers.get("x-request-id")


async def test_ready_is_503_when_the_database_is_unreachable(
    api: httpx.AsyncClient, app_config: AppConfig
) -> None:
    # The pool is process-wide: point it at a closed port, then restore it.
    await luser_db.close()
    luser_db.reset()
    luser_db.init("postgresql://nobody@127.0.0.1:1/none", timeout=1)
    try:
        assert (await api.get("/health")).status_code == 200
        r = await api.get("/ready")
    finally:
        await luser_db.close()
        luser_db.reset()
        init_database(app_config)
    assert r.status_code == 503
    assert error_code(r) == "DATABASE_UNAVAILABLE"
    assert "127.0.0.1" not in r.text  # no connection details leak
    assert (await api.get("/ready")).status_code == 200


async def test_unknown_route_and_method_use_the_error_envelope(api: httpx.AsyncClient) -> None:
    r = await api.get("/nope")
    assert r.status_code == 404 and error_code(r) == "NOT_FOUND"
    r = await api.delete("/health")
    assert r.status_code == 405 and error_code(r) == "METHOD_NOT_ALLOWED"


async def test_openapi_document_describes_the_api(api: httpx.AsyncClient) -> None:
    r = await api.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    login = doc["paths"]["/api/auth/login"]["post"]
    assert login["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "LoginBody"
    )
    assert "429" in login["responses"]
    listing = doc["paths"]["/api/videos"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert {"page", "size", "category_id", "q", "sort"} <= names
    me = doc["paths"]["/api/users/me"]["get"]
    assert me["security"] == [{"bearerAuth": []}]
    # every $ref points at a schema that exists
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', r.text))
    assert refs <= set(doc["components"]["schemas"])


async def test_docs_page_works_offline(api: httpx.AsyncClient) -> None:
    r = await api.get("/docs")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "/openapi.json" in r.text
    # nothing fetched from another host: no absolute src/href URLs
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', r.text)


def test_create_app_builds_without_a_database() -> None:
    assert isinstance(create_app(AppConfig()), Starlette)


async def test_production_refuses_the_development_jwt_secret() -> None:
    app = create_app(AppConfig(env="production"))
    with pytest.raises(ConfigError):
        async with app.router.lifespan_context(app):
            pass


async def test_openapi_includes_routes_added_after_create_app() -> None:
    @operation(
        "GET",
        "/api/extra/{id}",
        summary="Added by a feature package",
        tag="extra",
        response=dict[str, int],
    )
    async def extra(call: Call) -> dict[str, int]:
        return {"id": call.path_id()}

    app = create_app(AppConfig())
    app.router.routes.append(extra.route())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        doc = (await client.get("/openapi.json")).json()
        assert (await client.get("/api/extra/7")).json()["data"] == {"id": 7}
    assert doc["paths"]["/api/extra/{id}"]["get"]["summary"] == "Added by a feature package"
    assert "/api/videos" in doc["paths"]


async def test_lifespan_freezes_the_startup_heap_when_configured(app_config: AppConfig) -> None:
    server = app_config.server.model_copy(update={"gc_freeze": True})
    app = create_app(app_config.model_copy(update={"server": server}))
    gc.unfreeze()
    try:
        async with detached_pool(app_config), app.router.lifespan_context(app):
            frozen = gc.get_freeze_count()
    finally:
        gc.unfreeze()  # the test process keeps collecting everything
    assert frozen > 10_000  # the imported SDKs, models and routes
    assert load_config("production", CONFIG_DIR).server.gc_freeze
    assert not load_config("test", CONFIG_DIR).server.gc_freeze

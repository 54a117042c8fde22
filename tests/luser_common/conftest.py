"""Fixtures for luser_common: a real Starlette app wired with every handler and middleware."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from luser_common import (
    AppError,
    DatabaseUnavailable,
    NotFound,
    install_error_handlers,
    read_json,
    success,
)
from luser_common.context import current_request_id
from luser_common.http import parse_query
from luser_common.middleware import AccessLogMiddleware, RequestIdMiddleware


class Address(BaseModel):
    city: str
    zip_code: str = Field(min_length=6, max_length=6)


class Signup(BaseModel):
    name: str = Field(min_length=1)
    age: int = Field(ge=0)
    address: Address | None = None


class Listing(BaseModel):
    page: int = Field(1, ge=1)
    tags: list[str] = []
    q: str | None = None


async def echo(request: Request) -> Response:
    return success(await read_json(request, Signup))


async def raw(request: Request) -> Response:
    data = await read_json(request, limit=64)
    # Starlette's own body() still works after read_json streamed the body.
    return success({"data": data, "length": len(await request.body())})


async def raw_big(request: Request) -> Response:
    return success(await read_json(request))


async def listing(request: Request) -> Response:
    return success(parse_query(request, Listing))


async def boom(request: Request) -> Response:
    raise RuntimeError("password=hunter2 select * from secrets")


async def db_down(request: Request) -> Response:
    try:
        raise OSError("connection to 10.0.0.5:5432 refused")
    except OSError as exc:
        raise DatabaseUnavailable() from exc


async def missing(request: Request) -> Response:
    raise AppError.not_found("视频")


async def teapot(request: Request) -> Response:
    raise HTTPException(418)


async def not_modified(request: Request) -> Response:
    raise HTTPException(304)


async def rid(request: Request) -> Response:
    return success({"ctx": current_request_id(), "state": request.state.request_id})


async def raises_not_found_with_details(request: Request) -> Response:
    raise NotFound("用户不存在", field="user_id", details={"id": 7})


ROUTES = [
    Route("/echo", echo, methods=["POST"]),
    Route("/raw", raw, methods=["POST"]),
    Route("/raw_big", raw_big, methods=["POST"]),
    Route("/list", listing),
    Route("/boom", boom),
    Route("/missing", missing),
    Route("/db-down", db_down),
    Route("/teapot", teapot),
    Route("/not-modified", not_modified),
    Route("/rid", rid),
    Route("/details", raises_not_found_with_details),
]


def make_app(*extra: Middleware, routes: list[Route] | None = None) -> Starlette:
    app = Starlette(
        routes=routes or ROUTES,
        middleware=[Middleware(RequestIdMiddleware), Middleware(AccessLogMiddleware), *extra],
    )
    install_error_handlers(app)
    return app


@pytest.fixture
def client() -> Iterator[TestClient]:
    # raise_server_exceptions=False: look at what a real client gets for a 500.
    with TestClient(make_app(), raise_server_exceptions=False) as c:
        yield c

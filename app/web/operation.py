"""Declarative operations: one ``Operation`` per endpoint, turned into a Starlette route.

An operation names its body and query models (pydantic), its response model
(required: ``None`` only for a 204) and who may call it. The same declaration drives
validation here and the OpenAPI document in ``app.web.openapi``, so the two cannot
drift apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.accounts.models import User
from app.web.auth import authenticate
from app.web.types import MAX_BIGINT
from luser_common import NotFound
from luser_common.http import parse_query, read_json, success

if TYPE_CHECKING:
    # The web layer sits below the features; only type checking looks the container up.
    from app.container import Services

Access = Literal["public", "user", "admin"]
Handler = Callable[["Call"], Awaitable[Any]]

DEFAULT_BODY_LIMIT = 64 * 1024
JSON = "application/json"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    access: Access = "public"
    errors: tuple[int, ...] = ()
    raw_body: bool = False  # the handler reads the body itself (provider callbacks)
    body_limit: int = DEFAULT_BODY_LIMIT
    operation_id: str = ""
    # A handler answering with its own Response in a provider's format (not the JSON
    # envelope) names that format; ``response`` then describes the raw body.
    media_type: str = JSON

    @property
    def path_params(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]

    def route(self) -> Route:
        async def endpoint(request: Request) -> Response:
            return await _run(self, request)

        route = Route(self.path, endpoint, methods=[self.method], name=self.operation_id or None)
        # The OpenAPI document is built from the app's routes, so each route remembers
        # its operation.
        route.operation = self  # type: ignore[attr-defined]
        return route


@dataclass
class Call:
    """Everything a handler needs: the request, validated inputs and the caller."""

    request: Request
    body: Any = None
    query: Any = None
    user: User | None = None

    @property
    def services(self) -> Services:
        """The one services container (``app.container``), built at startup."""
        services: Services = self.request.app.state.services
        return services

    @property
    def current_user(self) -> User:
        assert self.user is not None, "operation must declare access='user' or 'admin'"
        return self.user

    def path_id(self, name: str = "id") -> int:
        """A positive bigint path parameter; anything else is simply not found."""
        raw = self.request.path_params.get(name, "")
        if not (isinstance(raw, str) and raw.isascii() and raw.isdigit()):
            raise NotFound(f"资源不存在: {name} 无效", field=name)
        value = int(raw)
        if not 1 <= value <= MAX_BIGINT:
            raise NotFound(f"资源不存在: {name} 无效", field=name)
        return value

    @property
    def client_ip(self) -> str:
        return self.request.client.host if self.request.client else "unknown"


def operation(
    method: str,
    path: str,
    *,
    summary: str,
    tag: str,
    response: Any,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    status: int = 200,
    access: Access = "public",
    errors: tuple[int, ...] = (),
    raw_body: bool = False,
    media_type: str = JSON,
) -> Callable[[Handler], Operation]:
    """Decorator turning ``async def handler(call) -> data`` into an :class:`Operation`.

    ``response`` is the type of the envelope's ``data`` (a pydantic model, a list of
    them, ...), or of the raw body when ``media_type`` is not JSON; ``None`` only for
    an operation answering 204 without a body.
    """

    def wrap(handler: Handler) -> Operation:
        return Operation(
            method=method.upper(),
            path=path,
            handler=handler,
            summary=summary,
            tag=tag,
            body=body,
            query=query,
            response=response,
            status=status,
            access=access,
            errors=errors,
            raw_body=raw_body,
            operation_id=handler.__name__,
            media_type=media_type,
        )

    return wrap


async def _run(op: Operation, request: Request) -> Response:
    call = Call(request)
    if op.access != "public":
        call.user = await authenticate(request, admin=op.access == "admin")
    if op.query is not None:
        call.query = parse_query(request, op.query)
    if op.body is not None:
        call.body = await read_json(request, op.body, limit=op.body_limit)
    result = await op.handler(call)
    if isinstance(result, Response):
        return result
    return success(_dump(result), status_code=op.status)


def operations_of(routes: Iterable[BaseRoute]) -> list[Operation]:
    """The operations behind ``routes`` (routes made by :meth:`Operation.route`)."""
    found = (getattr(route, "operation", None) for route in routes)
    return [op for op in found if isinstance(op, Operation)]


def _dump(result: Any) -> Any:
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    if isinstance(result, list):
        return [_dump(item) for item in result]
    return result

"""Every success answer the HTTP tests receive matches its operation's declared response.

``shape_check(app)`` is an httpx response hook: it finds the operation behind the
request, validates the envelope's ``data`` (or the raw body of an operation with its
own media type) against the declared response type, and requires the answer to
carry exactly the documented keys, no more and no fewer. It validates, it never
changes what the app sends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from pydantic import TypeAdapter
from starlette.applications import Starlette
from starlette.routing import Route

from app.web.operation import JSON, Operation

Hook = Callable[[httpx.Response], Awaitable[None]]


def operation_for(app: Starlette, method: str, path: str) -> Operation | None:
    for route in app.router.routes:
        op = getattr(route, "operation", None)
        if not (isinstance(route, Route) and isinstance(op, Operation)):
            continue
        if op.method == method and route.path_regex.match(path):
            return op
    return None


def same_keys(documented: Any, sent: Any, where: str) -> None:
    """``documented`` (the validated answer dumped again) has the keys ``sent`` has."""
    if isinstance(sent, dict) and isinstance(documented, dict):
        assert documented.keys() == sent.keys(), (
            f"{where}: undocumented {sorted(sent.keys() - documented.keys())}, "
            f"missing {sorted(documented.keys() - sent.keys())}"
        )
        for key, value in sent.items():
            same_keys(documented[key], value, f"{where}.{key}")
    elif isinstance(sent, list) and isinstance(documented, list):
        for i, (doc, value) in enumerate(zip(documented, sent, strict=True)):
            same_keys(doc, value, f"{where}[{i}]")


def assert_matches(op: Operation, response: httpx.Response) -> None:
    where = f"{op.method} {op.path} ({op.operation_id})"
    if op.response is None or response.status_code == 204:  # a 204 never has a body
        assert response.content == b"", f"{where}: declared no body, sent {response.text!r}"
        return
    if op.media_type != JSON:
        TypeAdapter(op.response).validate_python(response.text)
        return
    data = response.json()["data"]
    adapter: TypeAdapter[Any] = TypeAdapter(op.response)
    documented = adapter.dump_python(adapter.validate_python(data), mode="json")
    same_keys(documented, data, where)


def shape_check(app: Starlette) -> Hook:
    async def hook(response: httpx.Response) -> None:
        if not 200 <= response.status_code < 300:
            return
        op = operation_for(app, response.request.method, response.request.url.path)
        if op is not None:
            await response.aread()
            assert_matches(op, response)

    return hook

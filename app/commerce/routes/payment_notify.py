"""Provider notifications. The body is read raw: it is verified byte for byte.

The reply is the provider's own protocol, never the JSON envelope: Alipay wants
the text ``success`` (anything else means "send again"); WeChat Pay wants 204
(or 200) for success and 4xx/5xx with ``{"code": "FAIL", ...}`` otherwise.
"""

from __future__ import annotations

from typing import Literal

from starlette.responses import Response

from app.web.operation import Call, Operation, operation
from luser_common.http import read_body

NOTIFY_BODY_LIMIT = 64 * 1024


async def _receive(call: Call, provider: str) -> Response:
    body = await read_body(call.request, NOTIFY_BODY_LIMIT)
    return await call.services.commerce.payments.handle_notification(
        provider, call.request.headers, body
    )


@operation(
    "POST",
    "/api/payments/notify/alipay",
    summary="Alipay asynchronous notification",
    tag="payments",
    raw_body=True,
    errors=(404,),
    response=Literal["success", "failure"],
    media_type="text/plain",  # Alipay reads this body: "success" stops its retries
)
async def alipay_notify(call: Call) -> Response:
    return await _receive(call, "alipay")


@operation(
    "POST",
    "/api/payments/notify/wechat",
    summary="WeChat Pay v3 notification",
    tag="payments",
    raw_body=True,
    status=204,
    errors=(400, 404, 500),
    response=None,
)
async def wechat_notify(call: Call) -> Response:
    return await _receive(call, "wechat")


OPERATIONS: list[Operation] = [alipay_notify, wechat_notify]

"""Provider notifications. The body is read raw: it is verified byte for byte.

The reply is the provider's own protocol, never the JSON envelope: Alipay wants
the text ``success`` (anything else means "send again"); WeChat Pay wants 204
(or 200) for success and 4xx/5xx with ``{"code": "FAIL", ...}`` otherwise.
"""

from __future__ import annotations

from typing import Literal

from starlette.responses import Response

from app.payments.factory import PAYMENT_PROVIDERS
from app.web.operation import Call, Operation, operation
from luser_common import NotFound
from luser_common.http import read_body

NOTIFY_BODY_LIMIT = 64 * 1024


@operation(
    "POST",
    "/api/payments/notify/{provider}",
    summary="A payment provider's asynchronous notification",
    tag="payments",
    raw_body=True,
    errors=(400, 404, 500),
    # Each provider's own reply: Alipay reads this text ("success" stops its retries);
    # WeChat Pay is answered 204 with no body.
    response=Literal["success", "failure"],
    media_type="text/plain",
)
async def payment_notify(call: Call) -> Response:
    """One route for every registered provider (``/api/payments/notify/alipay`` ...).

    Alipay is answered with the text ``success``, WeChat Pay with 204: each
    provider's own reply, whatever the declared status.
    """
    provider = call.request.path_params["provider"]
    if provider not in PAYMENT_PROVIDERS:
        raise NotFound(f"支付渠道不存在: {provider}", details={"provider": provider})
    body = await read_body(call.request, NOTIFY_BODY_LIMIT)
    return await call.services.commerce.payments.handle_notification(
        provider, call.request.headers, body
    )


OPERATIONS: list[Operation] = [payment_notify]

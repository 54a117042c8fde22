"""Provider event callbacks (upload finished, transcoding done).

The provider authenticates itself (Tencent: a shared token in the callback URL;
Aliyun: the signed ``X-VOD-*`` headers); rejected callbacks get 403, and replays
of an applied event are acknowledged without changing anything.
"""

from __future__ import annotations

from typing import Literal

from app.web.operation import Call, Operation, operation
from app.web.types import Output
from luser_common.http import read_body

CALLBACK_BODY_LIMIT = 256 * 1024


class CallbackOut(Output):
    status: Literal["applied", "duplicate", "ignored", "unmatched"]
    event_id: str | None
    video_id: int | None


async def _receive(call: Call, provider: str) -> CallbackOut:
    body = await read_body(call.request, CALLBACK_BODY_LIMIT)
    outcome = await call.services.media.handle_callback(
        provider, call.request.headers, body, call.request.query_params
    )
    return CallbackOut.model_validate(outcome)


@operation(
    "POST",
    "/api/vod/callbacks/tencent",
    summary="Tencent Cloud VOD event callback",
    tag="vod",
    response=CallbackOut,
    raw_body=True,
    errors=(400, 403, 502),
)
async def tencent_callback(call: Call) -> CallbackOut:
    return await _receive(call, "tencent")


@operation(
    "POST",
    "/api/vod/callbacks/aliyun",
    summary="Aliyun VOD event callback",
    tag="vod",
    response=CallbackOut,
    raw_body=True,
    errors=(400, 403, 502),
)
async def aliyun_callback(call: Call) -> CallbackOut:
    return await _receive(call, "aliyun")


OPERATIONS: list[Operation] = [tencent_callback, aliyun_callback]

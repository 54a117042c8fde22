"""Provider event callbacks (upload finished, transcoding done).

The provider authenticates itself (Tencent: a shared token in the callback URL;
Aliyun: the signed ``X-VOD-*`` headers); rejected callbacks get 403, and replays
of an applied event are acknowledged without changing anything.
"""

from __future__ import annotations

from typing import Literal

from app.vod.registry import VOD_PROVIDERS
from app.web.operation import Call, Operation, operation
from app.web.types import Output
from luser_common import NotFound
from luser_common.http import read_body

CALLBACK_BODY_LIMIT = 256 * 1024


class CallbackOut(Output):
    status: Literal["applied", "duplicate", "ignored", "unmatched"]
    event_id: str | None
    video_id: int | None


@operation(
    "POST",
    "/api/vod/callbacks/{provider}",
    summary="A VOD provider's event callback",
    tag="vod",
    response=CallbackOut,
    raw_body=True,
    errors=(400, 403, 404, 502),
)
async def vod_callback(call: Call) -> CallbackOut:
    """One route for every registered provider (``/api/vod/callbacks/tencent`` ...)."""
    provider = call.request.path_params["provider"]
    if provider not in VOD_PROVIDERS:
        raise NotFound(f"视频点播服务不存在: {provider}", details={"provider": provider})
    body = await read_body(call.request, CALLBACK_BODY_LIMIT)
    outcome = await call.services.media.handle_callback(
        provider, call.request.headers, body, call.request.query_params
    )
    return CallbackOut.model_validate(outcome)


OPERATIONS: list[Operation] = [vod_callback]

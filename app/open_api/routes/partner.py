"""The partner API under /open/v1: sk- token callers, charged per call."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field
from starlette.requests import Request

from app.catalog.errors import InvalidState
from app.open_api.idempotency import request_fingerprint
from app.open_api.router import ChannelInfo
from app.open_api.routes._shared import UsageQuery, _usage, _window
from app.open_api.routes.responses import OpenVideoPage, PlayUrlOut, UploadOut, UsageOut
from app.open_api.service import CallContext
from app.vod.base import VodProvider
from app.web.operation import Call, Operation, operation
from app.web.types import Input, QueryInput, Text

__all__ = ["OPERATIONS"]


def _bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, key = value.partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None


def _context(call: Call, ability: str) -> CallContext:
    request = call.request
    idempotency_key = request.headers.get("idempotency-key") or None
    return CallContext(
        key=_bearer(request),
        ability=ability,
        path=request.url.path,
        client_ip=request.client.host if request.client else None,
        request_id=str(request.scope.get("state", {}).get("request_id") or uuid.uuid4().hex),
        idempotency_key=idempotency_key,
        # The key is bound to this request: method, path and validated parameters.
        fingerprint=None
        if idempotency_key is None
        else request_fingerprint(
            request.method,
            request.url.path,
            {"path": request.path_params, "query": call.query, "body": call.body},
        ),
    )


# -- /open/v1 ------------------------------------------------------------------------


class OpenVideoQuery(QueryInput):
    page: int = Field(1, ge=1, le=10_000)
    size: int = Field(20, ge=1, le=100)
    q: Text | None = Field(None, max_length=100)


@operation(
    "GET",
    "/open/v1/videos",
    summary="搜索视频目录 (catalog.search)",
    tag="open-api",
    query=OpenVideoQuery,
    errors=(401, 402, 403, 429),
    response=OpenVideoPage,
)
async def open_videos(call: Call) -> Any:
    query: OpenVideoQuery = call.query

    async def search(_: Any) -> Any:
        page = await call.services.catalog.public_videos(query.page, query.size, q=query.q)
        return page.to_dict(
            lambda v: {
                "id": v.id,
                "title": v.title,
                "description": v.description,
                "duration_seconds": v.duration_seconds,
                "cover_url": v.cover_url,
            }
        )

    return await call.services.open_api.call(
        _context(call, "catalog.search"), None, local=search, read_only=True
    )


@operation(
    "GET",
    "/open/v1/videos/{id}/play_url",
    summary="获取播放地址 (video.play_url)",
    tag="open-api",
    errors=(401, 402, 403, 404, 429, 502, 503),
    response=PlayUrlOut,
)
async def open_play_url(call: Call) -> Any:
    video_id = call.path_id()
    ctx = _context(call, "video.play_url")
    found: dict[str, Any] = {}

    async def resolve() -> str:
        # After the key is checked: unauthenticated callers learn nothing about videos.
        video = await call.services.catalog.public_video(video_id)
        if not video.media_id:
            raise InvalidState("视频暂不可播放")
        found["media_id"] = video.media_id
        return str(video.provider)

    async def play(channel: ChannelInfo, client: VodProvider) -> Any:
        signed = await client.play_url(found["media_id"], client_ip=ctx.client_ip)
        return {"video_id": video_id, "url": signed.url, "expires_at": signed.expires_at}

    # Signing a URL (and the lookup it may need) changes nothing at the provider.
    return await call.services.open_api.call(ctx, play, resolve=resolve, read_only=True)


class UploadIn(Input):
    title: Text = Field(min_length=1, max_length=200)
    file_name: Text = Field(min_length=1, max_length=200)


@operation(
    "POST",
    "/open/v1/uploads",
    summary="获取上传凭证 (video.upload_auth)",
    tag="open-api",
    body=UploadIn,
    errors=(401, 402, 403, 429, 502, 503),
    response=UploadOut,
)
async def open_upload(call: Call) -> Any:
    body: UploadIn = call.body
    ctx = _context(call, "video.upload_auth")

    async def upload(channel: ChannelInfo, client: VodProvider) -> Any:
        creds = await client.upload_credentials(
            body.title, body.file_name, source_context=f"open:{ctx.request_id}"[:250]
        )
        return {
            "provider": creds.provider,
            "channel_id": channel.id,
            "media_id": creds.media_id,
            "signature": creds.signature,
            "upload_address": creds.upload_address,
            "upload_auth": creds.upload_auth,
            "expires_at": creds.expires_at,
        }

    return await call.services.open_api.call(ctx, upload)


@operation(
    "GET",
    "/open/v1/usage",
    summary="查询本令牌所属账户的每日用量 (usage.read)",
    tag="open-api",
    query=UsageQuery,
    errors=(401, 402, 403, 429),
    response=UsageOut,
)
async def open_usage(call: Call) -> Any:
    window = _window(call.query)

    async def usage(info: Any) -> Any:
        return await _usage(call.query, window, info.user_id)

    return await call.services.open_api.call(
        _context(call, "usage.read"), None, local=usage, read_only=True
    )


OPERATIONS: list[Operation] = [
    open_videos,
    open_play_url,
    open_upload,
    open_usage,
]

"""Public catalog: list, detail and play."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from app.web.operation import Call, Operation, operation
from app.web.types import Id, Output, QueryInput, Text
from luser_common import Page

Sort = Literal["newest", "oldest", "title", "duration"]


class VideoOut(Output):
    id: int
    category_id: int | None
    title: str
    description: str
    cover_url: str
    duration_seconds: int
    provider: str
    preview_seconds: int
    required_level: int
    published_at: datetime | None


VIDEO_FIELDS = tuple(VideoOut.model_fields)


class VideoPage(Output):
    items: list[VideoOut]
    page_number: int
    page_size: int
    total_row: int
    total_page: int


class VideoListQuery(QueryInput):
    page: int = Field(1, ge=1, le=10_000)
    size: int = Field(20, ge=1, le=100)
    category_id: Id | None = None
    q: Text | None = Field(None, max_length=100, description="标题或简介关键字")
    sort: Sort = "newest"


class PlayOut(Output):
    video_id: int
    url: str
    preview: bool = Field(description="true: 仅试看片段")
    preview_seconds: int
    expires_at: datetime


def page_out(page: Page[Any], item: type[Output]) -> dict[str, Any]:
    """A page as plain dicts holding ``item``'s fields.

    Model rows already have the right types, so validating each one through pydantic
    again would only cost time on the busiest endpoint; the envelope encoder renders
    datetimes. The OpenAPI document still describes the page with ``VideoPage``.
    """
    names = tuple(item.model_fields)
    return page.to_dict(lambda row: row.to_dict(*names))


@operation(
    "GET",
    "/api/videos",
    summary="Published videos: filter, search, sort, paginate",
    tag="catalog",
    query=VideoListQuery,
    response=VideoPage,
)
async def list_videos(call: Call) -> dict[str, Any]:
    query: VideoListQuery = call.query
    page = await call.services.catalog.public_videos(
        query.page, query.size, category_id=query.category_id, q=query.q or None, sort=query.sort
    )
    return page_out(page, VideoOut)


@operation(
    "GET",
    "/api/videos/{id}",
    summary="One published video",
    tag="catalog",
    response=VideoOut,
    errors=(404,),
)
async def get_video(call: Call) -> dict[str, Any]:
    video = await call.services.catalog.public_card(call.path_id())
    return video.to_dict(*VIDEO_FIELDS)


@operation(
    "POST",
    "/api/videos/{id}/play",
    summary="A signed, expiring play URL: full when entitled, else a preview",
    tag="catalog",
    response=PlayOut,
    access="user",
    errors=(403, 404, 502, 503),
)
async def play_video(call: Call) -> PlayOut:
    grant = await call.services.player.play(call.current_user, call.path_id(), call.client_ip)
    return PlayOut.model_validate(grant)


OPERATIONS: list[Operation] = [list_videos, get_video, play_video]

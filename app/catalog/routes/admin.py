"""Admin: video CRUD, publishing, and the VOD upload / media refresh glue."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from app.catalog.routes.categories import DeletedOut
from app.catalog.routes.videos import page_out
from app.vod.registry import VodProviderName
from app.web.operation import Call, Operation, operation
from app.web.types import Id, Input, Output, Patch, QueryInput, Text

Provider = VodProviderName  # checked against app.vod.registry.VOD_PROVIDERS
Status = Literal["draft", "processing", "published", "offline"]
MAX_DURATION = 100 * 3600
MAX_PREVIEW = 3600
MAX_LEVEL = 100


class AdminVideoOut(Output):
    id: int
    category_id: int | None
    title: str
    description: str
    cover_url: str
    duration_seconds: int
    provider: str
    media_id: str | None
    media_status: str
    status: str
    preview_seconds: int
    required_level: int
    published_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None


class AdminVideoPage(Output):
    items: list[AdminVideoOut]
    page_number: int
    page_size: int
    total_row: int
    total_page: int


class AdminVideoQuery(QueryInput):
    page: int = Field(1, ge=1, le=10_000)
    size: int = Field(20, ge=1, le=100)
    status: Status | None = None
    category_id: Id | None = None
    q: Text | None = Field(None, max_length=100)


class VideoCreateBody(Input):
    title: Text = Field(min_length=1, max_length=200)
    description: Text = Field("", max_length=5000)
    cover_url: Text = Field("", max_length=1000)
    category_id: Id | None = None
    duration_seconds: int = Field(0, ge=0, le=MAX_DURATION)
    provider: Provider = "tencent"
    media_id: Text | None = Field(None, min_length=1, max_length=128)
    preview_seconds: int = Field(0, ge=0, le=MAX_PREVIEW)
    required_level: int = Field(0, ge=0, le=MAX_LEVEL)


class VideoUpdateBody(Patch):
    """Only the fields present are changed; ``category_id: null`` clears the category."""

    nullable = frozenset({"category_id"})

    title: Text | None = Field(None, min_length=1, max_length=200)
    description: Text | None = Field(None, max_length=5000)
    cover_url: Text | None = Field(None, max_length=1000)
    category_id: Id | None = None
    duration_seconds: int | None = Field(None, ge=0, le=MAX_DURATION)
    provider: Provider | None = None
    media_id: Text | None = Field(None, min_length=1, max_length=128)
    preview_seconds: int | None = Field(None, ge=0, le=MAX_PREVIEW)
    required_level: int | None = Field(None, ge=0, le=MAX_LEVEL)


class UploadBody(Input):
    file_name: Text = Field(min_length=1, max_length=255, description="原始文件名, 如 demo.mp4")


class UploadCredentialsOut(Output):
    video_id: int
    provider: str
    media_id: str | None = None
    credentials: dict[str, Any]
    expires_at: datetime | None = None


def _out(video: object) -> AdminVideoOut:
    return AdminVideoOut.model_validate(video)


@operation(
    "GET",
    "/api/admin/videos",
    summary="All videos (any status)",
    tag="admin",
    query=AdminVideoQuery,
    response=AdminVideoPage,
    access="admin",
)
async def admin_list_videos(call: Call) -> dict[str, Any]:
    query: AdminVideoQuery = call.query
    page = await call.services.catalog.admin_videos(
        query.page,
        query.size,
        status=query.status,
        category_id=query.category_id,
        q=query.q or None,
    )
    return page_out(page, AdminVideoOut)


@operation(
    "POST",
    "/api/admin/videos",
    summary="Create a video (draft)",
    tag="admin",
    body=VideoCreateBody,
    response=AdminVideoOut,
    status=201,
    access="admin",
    errors=(409,),
)
async def admin_create_video(call: Call) -> AdminVideoOut:
    fields = call.body.model_dump()
    return _out(await call.services.catalog.create_video(fields))


@operation(
    "GET",
    "/api/admin/videos/{id}",
    summary="One video (any status)",
    tag="admin",
    response=AdminVideoOut,
    access="admin",
    errors=(404,),
)
async def admin_get_video(call: Call) -> AdminVideoOut:
    return _out(await call.services.catalog.video(call.path_id()))


@operation(
    "PATCH",
    "/api/admin/videos/{id}",
    summary="Update a video",
    tag="admin",
    body=VideoUpdateBody,
    response=AdminVideoOut,
    access="admin",
    errors=(404, 409),
)
async def admin_update_video(call: Call) -> AdminVideoOut:
    changes = call.body.model_dump(exclude_unset=True)
    return _out(await call.services.catalog.update_video(call.path_id(), changes))


@operation(
    "POST",
    "/api/admin/videos/{id}/publish",
    summary="Publish a video",
    tag="admin",
    response=AdminVideoOut,
    access="admin",
    errors=(404, 409),
)
async def admin_publish_video(call: Call) -> AdminVideoOut:
    return _out(await call.services.catalog.publish(call.path_id()))


@operation(
    "POST",
    "/api/admin/videos/{id}/offline",
    summary="Take a video offline",
    tag="admin",
    response=AdminVideoOut,
    access="admin",
    errors=(404, 409),
)
async def admin_offline_video(call: Call) -> AdminVideoOut:
    return _out(await call.services.catalog.take_offline(call.path_id()))


@operation(
    "DELETE",
    "/api/admin/videos/{id}",
    summary="Delete a video (soft)",
    tag="admin",
    response=DeletedOut,
    access="admin",
    errors=(404,),
)
async def admin_delete_video(call: Call) -> DeletedOut:
    await call.services.catalog.delete_video(call.path_id())
    return DeletedOut(deleted=True)


@operation(
    "POST",
    "/api/admin/videos/{id}/upload-credentials",
    summary="Upload credentials from the video's VOD provider",
    tag="admin",
    body=UploadBody,
    response=UploadCredentialsOut,
    access="admin",
    errors=(404, 409, 502, 503),
)
async def admin_upload_credentials(call: Call) -> UploadCredentialsOut:
    grant = await call.services.media.upload_credentials(call.path_id(), call.body.file_name)
    return UploadCredentialsOut.model_validate(grant)


@operation(
    "POST",
    "/api/admin/videos/{id}/refresh",
    summary="Refresh media info from the provider",
    tag="admin",
    response=AdminVideoOut,
    access="admin",
    errors=(404, 409, 502, 503),
)
async def admin_refresh_video(call: Call) -> AdminVideoOut:
    return _out(await call.services.media.refresh(call.path_id()))


class TranscodeBody(Input):
    template: Text = Field(
        min_length=1,
        max_length=64,
        description="腾讯云: 转码模板编号 (如 100030); 阿里云: 转码模板组 ID",
    )


class TranscodeOut(Output):
    provider: str
    media_id: str
    task_id: str
    template: str


@operation(
    "POST",
    "/api/admin/videos/{id}/transcode",
    summary="Transcode the video's media with a template (result arrives as an event)",
    tag="admin",
    body=TranscodeBody,
    response=TranscodeOut,
    status=202,
    access="admin",
    errors=(400, 404, 409, 422, 502, 503),
)
async def admin_transcode_video(call: Call) -> TranscodeOut:
    task = await call.services.media.transcode(call.path_id(), call.body.template)
    return TranscodeOut.model_validate(task)


@operation(
    "POST",
    "/api/admin/videos/{id}/upload-credentials/renew",
    summary="Renew expired upload credentials of an upload in progress",
    tag="admin",
    body=UploadBody,
    response=UploadCredentialsOut,
    access="admin",
    errors=(404, 409, 502, 503),
)
async def admin_renew_upload_credentials(call: Call) -> UploadCredentialsOut:
    grant = await call.services.media.renew_upload_credentials(call.path_id(), call.body.file_name)
    return UploadCredentialsOut.model_validate(grant)


OPERATIONS: list[Operation] = [
    admin_list_videos,
    admin_create_video,
    admin_get_video,
    admin_update_video,
    admin_publish_video,
    admin_offline_video,
    admin_delete_video,
    admin_upload_credentials,
    admin_refresh_video,
    admin_transcode_video,
    admin_renew_upload_credentials,
]

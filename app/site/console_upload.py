"""The operator console's browser upload: a draft without media gets its file from
the operator's browser straight to the VOD provider.

The page asks for upload credentials through the same service call as the admin API's
``POST /api/admin/videos/{id}/upload-credentials`` (input checked by its ``UploadBody``),
and ``site.js`` sends the file to the provider (Tencent: one POST to ``upload_url``
with ``X-VOD-Signature``) and polls the video's status until the provider's "upload
finished" callback made it ready.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.catalog.routes.admin import UploadBody, UploadCredentialsOut
from app.site.context import services
from app.site.render import page, path_id, read_form, render, validate
from luser_common import AppError


@page(admin=True)
async def upload_page(request: Request) -> Response:
    video = await services(request).catalog.video(path_id(request))
    return render(request, "console/upload.html", {"video": video})


@page(admin=True)
async def upload_credentials(request: Request) -> Response:
    """JSON for the page's script: the grant, or the error envelope's code and message."""
    try:
        form = await read_form(request)
        body = validate(UploadBody, {"file_name": form.get("file_name", "")})
        grant = await services(request).media.upload_credentials(path_id(request), body.file_name)
    except AppError as err:
        return JSONResponse({"code": err.code, "message": err.message}, err.status_code)
    return JSONResponse(UploadCredentialsOut.model_validate(grant).model_dump(mode="json"))


@page(admin=True)
async def video_status(request: Request) -> Response:
    video = await services(request).catalog.video(path_id(request))
    return JSONResponse({"status": video.status, "media_status": video.media_status})

"""Video on demand behind one interface: Tencent Cloud VOD and Aliyun VOD.

    registry = VodRegistry(get_config(AppConfig).vod)
    provider = registry.get(video.provider)          # or registry.get() for the default
    creds = await provider.upload_credentials("标题", "demo.mp4", source_context=str(video.id))
    info = await provider.media_info(video.media_id)
    url = await provider.play_url(video.media_id, preview_seconds=video.preview_seconds)
    event = await provider.parse_callback(request.headers, await request.body(),
                                          request.query_params)

Offline stand-ins for both providers' APIs live in ``app.sandbox.vod``.
"""

from app.vod.aliyun import AliyunVodProvider
from app.vod.base import (
    CallbackRejected,
    MediaInfo,
    MediaStatus,
    SignedUrl,
    UploadCredentials,
    VodEvent,
    VodEventKind,
    VodProvider,
)
from app.vod.registry import PROVIDER_NAMES, VodRegistry, provider_for
from app.vod.tencent import TencentVodProvider

__all__ = [
    "PROVIDER_NAMES",
    "AliyunVodProvider",
    "CallbackRejected",
    "MediaInfo",
    "MediaStatus",
    "SignedUrl",
    "TencentVodProvider",
    "UploadCredentials",
    "VodEvent",
    "VodEventKind",
    "VodProvider",
    "VodRegistry",
    "provider_for",
]

"""Catalog <-> VOD provider glue: upload credentials, media refresh and callbacks.

Every provider call happens before the database write it leads to, so a provider
failure leaves the video untouched. Events are applied at most once, whether they
come as HTTP callbacks or are pulled from Tencent's reliable-callback queue: the
event id goes into ``vod_events`` (unique per provider) in the same transaction as
the video update, and a redelivered event finds its row already there. A pulled
event is confirmed only after its apply committed, so none is lost either.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.catalog.errors import InvalidState
from app.catalog.models import Video
from app.catalog.providers import ProviderLookup, guarded, pick
from app.catalog.service import Catalog
from app.catalog.status import MediaState, VideoStatus
from app.vod.base import (
    MediaInfo,
    MediaStatus,
    TranscodeTask,
    UploadCredentials,
    VodEvent,
    VodEventKind,
)
from luser_common import AppError, utc_now
from luser_db import Db, transaction

logger = logging.getLogger("luser.vod")

_READY_EVENTS = {VodEventKind.UPLOAD_FINISHED, VodEventKind.TRANSCODE_FINISHED}
_FAILED_EVENTS = {VodEventKind.UPLOAD_FAILED, VodEventKind.TRANSCODE_FAILED}
_MEDIA_STATUS = {
    MediaStatus.UPLOADING: MediaState.UPLOADING,
    MediaStatus.PROCESSING: MediaState.UPLOADING,
    MediaStatus.READY: MediaState.READY,
    MediaStatus.FAILED: MediaState.FAILED,
    MediaStatus.BLOCKED: MediaState.FAILED,
}


@dataclass(frozen=True)
class UploadGrant:
    video_id: int
    provider: str
    media_id: str | None
    credentials: dict[str, Any]
    expires_at: datetime


def _grant(video_id: int, provider: str, creds: UploadCredentials) -> UploadGrant:
    secret = {
        key: value
        for key, value in (
            ("signature", creds.signature),
            ("upload_address", creds.upload_address),
            ("upload_auth", creds.upload_auth),
            ("upload_url", creds.upload_url),
        )
        if value
    }
    return UploadGrant(video_id, provider, creds.media_id, secret, creds.expires_at)


@dataclass(frozen=True)
class PullReport:
    pulled: int
    confirmed: int
    outcomes: list[str]


@dataclass(frozen=True)
class CallbackOutcome:
    status: str  # "applied" | "duplicate" | "ignored" | "unmatched"
    event_id: str | None = None
    video_id: int | None = None


class Media:
    def __init__(self, catalog: Catalog, providers: ProviderLookup) -> None:
        self.catalog = catalog
        self.providers = providers

    async def upload_credentials(self, video_id: int, file_name: str) -> UploadGrant:
        video = await self.catalog.video(video_id)
        if video.status == VideoStatus.PUBLISHED:
            raise InvalidState("已发布的视频请先下线再重新上传")
        provider = pick(self.providers, video.provider)
        creds = await guarded(
            video.provider,
            provider.upload_credentials(
                video.title,
                file_name,
                description=video.description or None,
                source_context=str(video.id),
            ),
        )
        changed = await (
            Video.query()
            .where("id = ?", video.id)
            .where("deleted_at is null")
            .where("status <> ?", VideoStatus.PUBLISHED)
            .update(
                status=VideoStatus.PROCESSING,
                media_status=MediaState.UPLOADING,
                media_id=creds.media_id or video.media_id,
                updated_at=utc_now(),
            )
        )
        if changed == 0:
            raise InvalidState("视频状态已变化, 请重试")
        return _grant(video.id, video.provider, creds)

    async def refresh(self, video_id: int) -> Video:
        video = await self.catalog.video(video_id)
        if not video.media_id:
            raise InvalidState("视频尚未关联媒体文件")
        info = await guarded(
            video.provider, pick(self.providers, video.provider).media_info(video.media_id)
        )
        _apply_info(video, info)
        await video.update()
        return video

    async def handle_callback(
        self,
        provider_name: str,
        headers: Mapping[str, str],
        body: bytes,
        query: Mapping[str, str],
    ) -> CallbackOutcome:
        provider = pick(self.providers, provider_name)
        event = await guarded(provider_name, provider.parse_callback(headers, body, query))
        if event is None:
            return CallbackOutcome("ignored")
        return await self.apply_event(provider_name, event)

    async def apply_event(self, provider_name: str, event: VodEvent) -> CallbackOutcome:
        """Apply an authentic event at most once, whichever way it arrived (HTTP
        callback or a pulled reliable callback)."""
        if await _recorded(provider_name, event.event_id):
            return CallbackOutcome("duplicate", event.event_id)
        change = await self._confirmed_change(provider_name, event)
        async with transaction():
            # query_value, not find_first: find_first would append LIMIT 1 to the INSERT.
            recorded = await Db.query_value(
                "insert into vod_events (provider, event_id, event_type, media_id, payload)"
                " values (?, ?, ?, ?, ?) on conflict (provider, event_id) do nothing returning id",
                provider_name,
                event.event_id,
                str(event.kind),
                event.media_id,
                event.raw or None,
            )
            if recorded is None:  # a concurrent delivery of the same event won the race
                return CallbackOutcome("duplicate", event.event_id)
            video_id = await _apply_change(provider_name, event, change) if change else None
            if video_id is not None:
                await Db.execute(
                    "update vod_events set video_id = ? where id = ?", video_id, recorded
                )
        return CallbackOutcome("applied" if video_id else "unmatched", event.event_id, video_id)

    async def pull_events(self, provider_name: str = "tencent") -> PullReport:
        """Take the waiting reliable callbacks, apply each at most once, then confirm
        the ones that were settled. An event whose apply failed is not confirmed: the
        provider hands it out again and the next pull retries it."""
        provider = pick(self.providers, provider_name)
        pulled = await guarded(provider_name, provider.pull_events())
        settled: list[str] = []
        outcomes: list[str] = []
        for item in pulled:
            try:
                outcome = (
                    await self.apply_event(provider_name, item.event)
                    if item.event is not None
                    else CallbackOutcome("ignored")
                )
            except AppError as exc:
                logger.warning(
                    "pulled %s event not applied (%s): retried later", provider_name, exc
                )
                outcomes.append("error")
                continue
            settled.append(item.handle)
            outcomes.append(outcome.status)
        if settled:
            await guarded(provider_name, provider.confirm_events(settled))
        return PullReport(pulled=len(pulled), confirmed=len(settled), outcomes=outcomes)

    async def transcode(self, video_id: int, template: str) -> TranscodeTask:
        """Start transcoding the video's media with ``template``; the result arrives as
        an event (callback or pulled) and updates the video like any other."""
        video = await self.catalog.video(video_id)
        if not video.media_id:
            raise InvalidState("视频尚未关联媒体文件")
        provider = pick(self.providers, video.provider)
        return await guarded(video.provider, provider.transcode(video.media_id, template))

    async def renew_upload_credentials(self, video_id: int, file_name: str) -> UploadGrant:
        """New credentials for an upload in progress whose credentials expired (Aliyun
        RefreshUploadVideo for the same media id; Tencent signs again)."""
        video = await self.catalog.video(video_id)
        if video.status != "processing" or video.media_status != "uploading":
            raise InvalidState("视频不在上传中, 请重新申请上传凭证")
        provider = pick(self.providers, video.provider)
        creds = await guarded(
            video.provider,
            provider.renew_upload_credentials(
                video.media_id, video.title, file_name, source_context=str(video.id)
            ),
        )
        return _grant(video.id, video.provider, creds)

    async def _confirmed_change(self, provider_name: str, event: VodEvent) -> _Change | None:
        """What the event does to the video. Callback authentication does not cover the
        body for every provider, so "ready" is confirmed with the provider first."""
        if event.kind in _FAILED_EVENTS:
            return _Change(MediaState.FAILED, 0, "")
        if event.kind not in _READY_EVENTS:
            return None
        info = await guarded(
            provider_name, pick(self.providers, provider_name).media_info(event.media_id)
        )
        status = _MEDIA_STATUS.get(info.status, MediaState.UPLOADING)
        duration = info.duration or event.duration or 0
        return _Change(status, round(duration), info.cover_url or event.cover_url or "")


@dataclass(frozen=True)
class _Change:
    media_status: str
    duration: int
    cover_url: str


async def _recorded(provider: str, event_id: str) -> bool:
    found = await Db.find_first(
        "select 1 as hit from vod_events where provider = ? and event_id = ?", provider, event_id
    )
    return found is not None


def _apply_info(video: Video, info: MediaInfo) -> None:
    if info.duration:
        video.duration_seconds = round(info.duration)
    if info.cover_url and not video.cover_url:
        video.cover_url = info.cover_url
    status = _MEDIA_STATUS.get(info.status)
    if status is not None:
        video.media_status = status
    if status == MediaState.READY and video.status == VideoStatus.PROCESSING:
        video.status = VideoStatus.DRAFT  # media is ready; an admin decides when to publish


def _source_video_id(event: VodEvent) -> int | None:
    context = (event.source_context or "").strip()
    return int(context) if context.isdigit() and len(context) < 19 else None


async def _apply_change(provider: str, event: VodEvent, change: _Change) -> int | None:
    """Update the video the event is about; its id, or None when no video matches.

    The video is found by our id (the upload's source context) or by the media id.
    """
    source_id = _source_video_id(event)
    video_id = await Db.query_value(
        "update videos set"
        " media_id = ?, media_status = ?,"
        " duration_seconds = case when ? > 0 then ? else duration_seconds end,"
        " cover_url = case when cover_url = '' then ? else cover_url end,"
        f" status = case when status = '{VideoStatus.PROCESSING}'"
        f" and ? = '{MediaState.READY}' then '{VideoStatus.DRAFT}' else status end,"
        " updated_at = now()"
        " where deleted_at is null and provider = ?"
        " and (id = ? or (media_id is not null and media_id = ?))"
        " returning id",
        event.media_id,
        change.media_status,
        change.duration,
        change.duration,
        change.cover_url,
        change.media_status,
        provider,
        source_id or 0,
        event.media_id,
    )
    return int(video_id) if video_id is not None else None

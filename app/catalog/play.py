"""Play: a signed, expiring URL, full or preview, by the caller's entitlement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.accounts.models import User
from app.catalog.entitlement import EntitlementChecker
from app.catalog.errors import InvalidState, PreviewNotAvailable
from app.catalog.providers import ProviderLookup, guarded, pick
from app.catalog.service import Catalog


@dataclass(frozen=True)
class PlayGrant:
    video_id: int
    url: str
    preview: bool
    preview_seconds: int
    expires_at: datetime


class Player:
    def __init__(
        self, catalog: Catalog, providers: ProviderLookup, entitlements: EntitlementChecker
    ) -> None:
        self.catalog = catalog
        self.providers = providers
        self.entitlements = entitlements

    async def play(self, user: User, video_id: int, client_ip: str | None = None) -> PlayGrant:
        video = await self.catalog.public_video(video_id)
        if not video.media_id:
            raise InvalidState("视频暂不可播放")
        level = await self.entitlements.level_for(user.id)
        if level >= video.required_level:
            preview: int | None = None
        elif video.preview_seconds > 0:
            preview = video.preview_seconds
        else:
            raise PreviewNotAvailable()
        provider = pick(self.providers, video.provider)
        signed = await guarded(
            video.provider,
            provider.play_url(video.media_id, preview_seconds=preview, client_ip=client_ip),
        )
        return PlayGrant(video.id, signed.url, preview is not None, preview or 0, signed.expires_at)

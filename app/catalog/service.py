"""The video catalog: categories and videos, public reads and admin writes.

Only published, not deleted videos are visible to the public; any other video is
simply "not found" there. State changes are conditional UPDATEs so concurrent
admins cannot move a video through an invalid transition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.catalog.category import Category
from app.catalog.deletions import queue_media_deletion
from app.catalog.errors import CategoryInUse, InvalidState
from app.catalog.models import Video
from app.catalog.status import MediaState, VideoStatus
from luser_common import NotFound, Page, ValidationError, utc_now
from luser_db import QueryBuilder, like_contains, transaction

SORTS: Mapping[str, tuple[str, ...]] = {
    "newest": ("published_at desc", "id desc"),
    "oldest": ("published_at asc", "id asc"),
    "title": ("title asc", "id asc"),
    "duration": ("duration_seconds asc", "id asc"),
}
ADMIN_SORT = ("id desc",)
# What the public sees of a video; public reads load only these columns.
PUBLIC_FIELDS = (
    "id",
    "category_id",
    "title",
    "description",
    "cover_url",
    "duration_seconds",
    "provider",
    "preview_seconds",
    "required_level",
    "published_at",
)
_PUBLIC_CARD_SQL = (
    f"select {', '.join(PUBLIC_FIELDS)} from videos"
    f" where id = ? and status = '{VideoStatus.PUBLISHED}' and deleted_at is null"
)
VIDEO_STATUSES = tuple(VideoStatus)
# The public lists come from luser_db's query cache; any committed write to
# videos/categories (in this process or another) evicts them, the TTL only bounds
# what a write outside luser_db could leave stale.
PUBLIC_CACHE_TTL = 60


class Catalog:
    # -- categories --------------------------------------------------------------

    async def categories(self) -> list[Category]:
        return await _CATEGORIES.all()

    async def category(self, category_id: int) -> Category:
        found = await Category.find_by_id(category_id)
        if found is None:
            raise NotFound("分类不存在")
        return found

    async def create_category(self, name: str, slug: str, sort_order: int = 0) -> Category:
        category = Category(name=name, slug=slug, sort_order=sort_order)
        await category.save()
        return category

    async def update_category(self, category_id: int, changes: Mapping[str, Any]) -> Category:
        category = await self.category(category_id)
        for key, value in changes.items():
            setattr(category, key, value)
        await category.update()
        return category

    async def delete_category(self, category_id: int) -> None:
        """Delete an empty category; one that videos still use is refused (409).

        FOR UPDATE conflicts with the key-share lock a concurrent video insert or
        move takes on the category through the foreign key, so no video can join
        between the count and the delete. Soft-deleted videos do not count; the
        foreign key sets their category to NULL.
        """
        async with transaction():
            category = await Category.find_first(
                "select * from categories where id = ? for update", category_id
            )
            if category is None:
                raise NotFound("分类不存在")
            used = (
                await Video.query()
                .where("category_id = ?", category_id)
                .where("deleted_at is null")
                .count()
            )
            if used:
                raise CategoryInUse(details={"videos": used})
            await category.delete()

    # -- public reads ------------------------------------------------------------

    def public_query(self) -> QueryBuilder[Video]:
        return _PUBLIC

    async def public_videos(
        self,
        page: int,
        size: int,
        *,
        category_id: int | None = None,
        q: str | None = None,
        sort: str = "newest",
    ) -> Page[Video]:
        """A page of published videos with only ``PUBLIC_FIELDS`` loaded."""
        query = _filtered(_PUBLIC_SORTED[sort], category_id, q)
        return await query.cache("public_videos", PUBLIC_CACHE_TTL).paginate(page, size)

    async def public_video(self, video_id: int) -> Video:
        """A published video with every field (media id included) for playing it."""
        # Hot reads use fixed SQL: no query to build per request.
        found = await Video.find_first(
            f"select * from videos where id = ? and status = '{VideoStatus.PUBLISHED}'"
            " and deleted_at is null",
            video_id,
        )
        if found is None:
            raise NotFound("视频不存在")
        return found

    async def public_card(self, video_id: int) -> Video:
        """A published video with only ``PUBLIC_FIELDS`` loaded: the public detail."""
        found = await Video.find_first(_PUBLIC_CARD_SQL, video_id)
        if found is None:
            raise NotFound("视频不存在")
        return found

    # -- admin ---------------------------------------------------------------------

    async def admin_videos(
        self,
        page: int,
        size: int,
        *,
        status: str | None = None,
        category_id: int | None = None,
        q: str | None = None,
    ) -> Page[Video]:
        query = _filtered(Video.query().where("deleted_at is null"), category_id, q)
        if status:
            query = query.where("status = ?", status)
        for key in ADMIN_SORT:
            query = query.order_by(key)
        return await query.paginate(page, size)

    async def video(self, video_id: int) -> Video:
        found = await Video.query().where("id = ?", video_id).where("deleted_at is null").first()
        if found is None:
            raise NotFound("视频不存在")
        return found

    async def create_video(self, fields: Mapping[str, Any]) -> Video:
        await self._check_category(fields.get("category_id"))
        video = Video(**fields)
        video.status = VideoStatus.DRAFT
        video.media_status = MediaState.READY if video.media_id else MediaState.NONE
        await video.save()
        return video

    async def update_video(self, video_id: int, changes: Mapping[str, Any]) -> Video:
        video = await self.video(video_id)
        if "category_id" in changes:
            await self._check_category(changes["category_id"])
        for key, value in changes.items():
            setattr(video, key, value)
        if changes.get("media_id"):
            video.media_status = MediaState.READY  # the admin names media that already exists
        await video.update()
        return video

    async def publish(self, video_id: int) -> Video:
        video = await self.video(video_id)
        if not video.media_id or video.media_status != MediaState.READY:
            raise InvalidState("视频媒体尚未就绪, 不能发布")
        now = utc_now()
        changed = await (
            Video.query()
            .where("id = ?", video_id)
            .where("deleted_at is null")
            .where(
                "status in (?, ?, ?)",
                VideoStatus.DRAFT,
                VideoStatus.PROCESSING,
                VideoStatus.OFFLINE,
            )
            .update(status=VideoStatus.PUBLISHED, published_at=now, updated_at=now)
        )
        if changed == 0:
            raise InvalidState("视频已发布或状态已变化")
        return await self.video(video_id)

    async def take_offline(self, video_id: int) -> Video:
        await self.video(video_id)
        changed = await (
            Video.query()
            .where("id = ?", video_id)
            .where("deleted_at is null")
            .where("status = ?", VideoStatus.PUBLISHED)
            .update(status=VideoStatus.OFFLINE, updated_at=utc_now())
        )
        if changed == 0:
            raise InvalidState("只有已发布的视频可以下线")
        return await self.video(video_id)

    async def delete_video(self, video_id: int) -> None:
        """Soft-delete the video and queue its media for deletion at the provider,
        in one transaction (app.catalog.deletions works the queue off)."""
        now = utc_now()
        async with transaction():
            video = await Video.find_first(
                "select * from videos where id = ? and deleted_at is null for update", video_id
            )
            if video is None:
                raise NotFound("视频不存在")
            await Video.query().where("id = ?", video_id).update(deleted_at=now, updated_at=now)
            await queue_media_deletion(video)

    async def _check_category(self, category_id: int | None) -> None:
        if category_id is not None and await Category.find_by_id(category_id) is None:
            raise ValidationError("分类不存在", field="category_id")


# Builders are immutable: the public queries are defined once, and each keeps its
# compiled SQL, so an unfiltered page costs no query building at all.
# Literal predicates, not bound values: the partial indexes of migration 0011 match
# only a constant, and asyncpg's prepared statements go generic.
_PUBLIC = Video.query().where(f"status = '{VideoStatus.PUBLISHED}'")
_CATEGORIES = (
    Category.query()
    .order_by("sort_order asc")
    .order_by("id asc")
    .cache("categories", PUBLIC_CACHE_TTL)
)
_PUBLIC_SORTED = {
    name: _PUBLIC.select(*PUBLIC_FIELDS).order_by(*keys) for name, keys in SORTS.items()
}


def _filtered(
    query: QueryBuilder[Video], category_id: int | None, q: str | None
) -> QueryBuilder[Video]:
    if category_id is not None:
        query = query.where("category_id = ?", category_id)
    if q:
        pattern = like_contains(q)
        query = query.where("(title ilike ? or description ilike ?)", pattern, pattern)
    return query

"""``luser videos ...``: the admin video operations from the command line.

Options are validated by the admin API's body models and applied by the same
Catalog service calls as ``/api/admin/videos``.
"""

from __future__ import annotations

from typing import Any

import click

from app.cli_admin import ID, AdminContext, emit, emit_page, json_option, run, validated
from luser_db.cli import cli_errors, env_option

__all__ = ["videos_group"]

VIDEO_COLUMNS = ("id", "title", "provider", "media_id", "media_status", "status", "required_level")


@click.group("videos")
def videos_group() -> None:
    """Videos: list, show, create, update, publish, take offline, delete."""


def _video_options(fn: Any) -> Any:
    for option in reversed(
        (
            click.option("--title"),
            click.option("--description"),
            click.option("--cover-url"),
            click.option("--category-id", type=ID),
            click.option("--duration-seconds", type=int),
            click.option("--provider", type=click.Choice(["tencent", "aliyun"])),
            click.option("--media-id"),
            click.option("--preview-seconds", type=int),
            click.option("--required-level", type=int),
        )
    ):
        fn = option(fn)
    return fn


def _show(video: Any, as_json: bool) -> None:
    from app.catalog.routes.admin import AdminVideoOut

    emit(AdminVideoOut.model_validate(video), as_json=as_json)


@videos_group.command("list")
@click.option("--status", help="draft, processing, published or offline.")
@click.option("--category-id", type=ID)
@click.option("--q", help="Part of the title or description.")
@click.option("--page", type=int, default=1, show_default=True)
@click.option("--size", type=int, default=20, show_default=True)
@json_option
@env_option
@cli_errors
def list_cmd(as_json: bool, **options: Any) -> None:
    """Videos of any status, newest first."""
    from app.catalog.routes.admin import AdminVideoOut, AdminVideoQuery

    q = validated(AdminVideoQuery, options)

    async def job(ctx: AdminContext) -> None:
        page = await ctx.services.catalog.admin_videos(
            q.page, q.size, status=q.status, category_id=q.category_id, q=q.q or None
        )
        emit_page(page, AdminVideoOut, as_json=as_json, columns=VIDEO_COLUMNS)

    run(job)


@videos_group.command("show")
@click.argument("video_id", type=ID)
@json_option
@env_option
@cli_errors
def show_cmd(video_id: int, as_json: bool) -> None:
    """One video (any status)."""

    async def job(ctx: AdminContext) -> None:
        _show(await ctx.services.catalog.video(video_id), as_json)

    run(job)


@videos_group.command("create")
@_video_options
@json_option
@env_option
@cli_errors
def create_cmd(as_json: bool, **options: Any) -> None:
    """Create a draft video (--title is required)."""
    from app.catalog.routes.admin import VideoCreateBody

    body = validated(VideoCreateBody, options)

    async def job(ctx: AdminContext) -> None:
        _show(await ctx.services.catalog.create_video(body.model_dump()), as_json)

    run(job)


@videos_group.command("update")
@click.argument("video_id", type=ID)
@_video_options
@json_option
@env_option
@cli_errors
def update_cmd(video_id: int, as_json: bool, **options: Any) -> None:
    """Change the given fields of a video."""
    from app.catalog.routes.admin import VideoUpdateBody

    changes = validated(VideoUpdateBody, options).model_dump(exclude_unset=True)

    async def job(ctx: AdminContext) -> None:
        _show(await ctx.services.catalog.update_video(video_id, changes), as_json)

    run(job)


@videos_group.command("publish")
@click.argument("video_id", type=ID)
@json_option
@env_option
@cli_errors
def publish_cmd(video_id: int, as_json: bool) -> None:
    """Publish a video whose media is ready."""

    async def job(ctx: AdminContext) -> None:
        _show(await ctx.services.catalog.publish(video_id), as_json)

    run(job)


@videos_group.command("disable")
@click.argument("video_id", type=ID)
@json_option
@env_option
@cli_errors
def disable_cmd(video_id: int, as_json: bool) -> None:
    """Take a published video offline."""

    async def job(ctx: AdminContext) -> None:
        _show(await ctx.services.catalog.take_offline(video_id), as_json)

    run(job)


@videos_group.command("delete")
@click.argument("video_id", type=ID)
@env_option
@cli_errors
def delete_cmd(video_id: int) -> None:
    """Delete a video (its media is deleted at the provider by a background job)."""

    async def job(ctx: AdminContext) -> None:
        await ctx.services.catalog.delete_video(video_id)
        click.echo(f"已删除视频 {video_id}")

    run(job)


@videos_group.command("transcode")
@click.argument("video_id", type=ID)
@click.argument("template")
@json_option
@env_option
@cli_errors
def transcode_cmd(video_id: int, template: str, as_json: bool) -> None:
    """Transcode a video's media with TEMPLATE (Tencent: definition; Aliyun: group id)."""
    from app.catalog.routes.admin import TranscodeBody, TranscodeOut

    body = validated(TranscodeBody, {"template": template})

    async def job(ctx: AdminContext) -> None:
        task = await ctx.services.media.transcode(video_id, body.template)
        emit(TranscodeOut.model_validate(task), as_json=as_json)

    run(job)


@videos_group.command("jobs")
@click.option("--loop", is_flag=True, help="Keep running, every vod.jobs_interval_seconds.")
@env_option
@cli_errors
def jobs_cmd(loop: bool) -> None:
    """Delete queued media at the provider and (pull mode) apply Tencent events."""
    from app.catalog.vod_jobs import VodJobs
    from luser_common.tasks import every

    async def job(ctx: AdminContext) -> None:
        jobs = VodJobs(ctx.services.media, ctx.config.vod)

        async def one_pass() -> None:
            report = await jobs.run_once()
            click.echo(f"点播任务完成: 删除 {report.deletions}; 事件 {report.events}")

        if not loop:
            await one_pass()
            return
        await every(ctx.config.vod.jobs_interval_seconds or 30, one_pass, name="vod-jobs", first=0)

    run(job)


@videos_group.command("deletions")
@click.option("--all", "include_done", is_flag=True, help="Include finished deletions.")
@click.option("--retry-failed", is_flag=True, help="Queue failed deletions again first.")
@json_option
@env_option
@cli_errors
def deletions_cmd(include_done: bool, retry_failed: bool, as_json: bool) -> None:
    """Media deletions at the provider: pending and failed ones (newest first)."""
    from app.catalog.vod_jobs import VodJobs

    async def job(ctx: AdminContext) -> None:
        deletions = VodJobs(ctx.services.media, ctx.config.vod).deletions
        if retry_failed:
            click.echo(f"已重新排队 {await deletions.retry_failed()} 个删除任务", err=True)
        rows = [r.to_dict() for r in await deletions.pending(include_done=include_done)]
        columns = ("id", "video_id", "provider", "media_id", "status", "outcome", "attempts")
        emit(rows, as_json=as_json, columns=(*columns, "next_attempt_at", "last_error"))

    run(job)

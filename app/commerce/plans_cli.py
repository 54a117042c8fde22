"""``luser plans ...``: the admin plan operations from the command line.

Validated by the admin API's body models, applied by the same ``Plans`` service
as ``/api/admin/plans``.
"""

from __future__ import annotations

from typing import Any

import click

from app.cli_admin import ID, AdminContext, emit, emit_page, json_option, run, validated
from luser_db.cli import cli_errors, env_option

__all__ = ["plans_group"]

PLAN_COLUMNS = ("id", "name", "level", "duration_days", "price_fen", "active", "sort_order")


@click.group("plans")
def plans_group() -> None:
    """Subscription plans: list, show, create, update, disable."""


def _plan_options(fn: Any) -> Any:
    for option in reversed(
        (
            click.option("--name"),
            click.option("--description"),
            click.option("--level", type=int),
            click.option("--duration-days", type=int),
            click.option("--price-fen", type=int, help="Price in fen (1 yuan = 100)."),
            click.option("--sort-order", type=int),
        )
    ):
        fn = option(fn)
    return fn


def _show(plan: Any, as_json: bool) -> None:
    from app.commerce.routes.schemas import PlanOut

    emit(PlanOut.model_validate(plan), as_json=as_json)


@plans_group.command("list")
@click.option("--active/--inactive", default=None, help="Only plans on (or off) sale.")
@click.option("--page", type=int, default=1, show_default=True)
@click.option("--size", type=int, default=20, show_default=True)
@json_option
@env_option
@cli_errors
def list_cmd(active: bool | None, page: int, size: int, as_json: bool) -> None:
    """All plans in display order."""
    from app.commerce.routes.plans import PlanAdminQuery
    from app.commerce.routes.schemas import PlanOut

    q = validated(PlanAdminQuery, {"page": page, "size": size, "active": active})

    async def job(ctx: AdminContext) -> None:
        found = await ctx.commerce.plans.admin_page(q.page, q.size, q.active)
        emit_page(found, PlanOut, as_json=as_json, columns=PLAN_COLUMNS)

    run(job)


@plans_group.command("show")
@click.argument("plan_id", type=ID)
@json_option
@env_option
@cli_errors
def show_cmd(plan_id: int, as_json: bool) -> None:
    """One plan."""

    async def job(ctx: AdminContext) -> None:
        _show(await ctx.commerce.plans.get(plan_id), as_json)

    run(job)


@plans_group.command("create")
@_plan_options
@click.option("--inactive", is_flag=True, help="Create it off sale.")
@json_option
@env_option
@cli_errors
def create_cmd(inactive: bool, as_json: bool, **options: Any) -> None:
    """Create a plan (--name, --level, --duration-days and --price-fen are required)."""
    from app.commerce.routes.plans import PlanIn

    body = validated(PlanIn, {**options, "active": not inactive})

    async def job(ctx: AdminContext) -> None:
        _show(await ctx.commerce.plans.create(**body.model_dump()), as_json)

    run(job)


@plans_group.command("update")
@click.argument("plan_id", type=ID)
@_plan_options
@click.option("--active/--inactive", default=None)
@json_option
@env_option
@cli_errors
def update_cmd(plan_id: int, as_json: bool, **options: Any) -> None:
    """Change the given fields (existing orders keep their snapshot)."""
    from app.commerce.routes.plans import PlanPatch

    changes = validated(PlanPatch, options).model_dump(exclude_unset=True, exclude_none=True)

    async def job(ctx: AdminContext) -> None:
        _show(await ctx.commerce.plans.update(plan_id, **changes), as_json)

    run(job)


@plans_group.command("disable")
@click.argument("plan_id", type=ID)
@json_option
@env_option
@cli_errors
def disable_cmd(plan_id: int, as_json: bool) -> None:
    """Take a plan off sale."""

    async def job(ctx: AdminContext) -> None:
        _show(await ctx.commerce.plans.update(plan_id, active=False), as_json)

    run(job)

"""``luser users ...``: find users, see one in full, enable or disable them.

The same service calls as ``/api/admin/users`` (app.accounts.routes.admin).
"""

from __future__ import annotations

from datetime import datetime

import click

from app.cli_admin import ID, AdminContext, emit, emit_page, json_option, run, validated
from luser_db.cli import cli_errors, env_option

__all__ = ["users_group"]

USER_COLUMNS = ("id", "email", "phone", "nickname", "role", "status", "created_at")


@click.group("users")
def users_group() -> None:
    """Users: list and search, show one with orders, subscription and wallet, enable/disable."""


@users_group.command("list")
@click.option("--email", help="Part of the email address.")
@click.option("--phone", help="Part of the mobile number.")
@click.option("--status", help="active or disabled.")
@click.option("--created-from", help="Signed up at or after (ISO 8601 with time zone).")
@click.option("--created-to", help="Signed up before (ISO 8601 with time zone).")
@click.option("--page", type=int, default=1, show_default=True)
@click.option("--size", type=int, default=20, show_default=True)
@json_option
@env_option
@cli_errors
def list_cmd(as_json: bool, page: int, size: int, **filters: str | None) -> None:
    """Search users, newest first."""
    from app.accounts.routes.admin import UserSearchQuery
    from app.accounts.routes.users import UserOut

    query = validated(UserSearchQuery, {"page": page, "size": size, **filters})

    async def job(ctx: AdminContext) -> None:
        found = await ctx.services.accounts.search(query.page, query.size, query.filter())
        emit_page(found, UserOut, as_json=as_json, columns=USER_COLUMNS)

    run(job)


@users_group.command("show")
@click.argument("user_id", type=ID)
@json_option
@env_option
@cli_errors
def show_cmd(user_id: int, as_json: bool) -> None:
    """One user with recent orders, subscription and wallet."""
    from app.accounts.overview import user_overview
    from app.accounts.routes.admin import UserDetailOut

    async def job(ctx: AdminContext) -> None:
        detail = UserDetailOut.model_validate(await user_overview(ctx.services.accounts, user_id))
        if as_json:
            emit(detail, as_json=True)
            return
        emit(detail.user, as_json=False, title="用户")
        sub = detail.subscription
        click.echo(
            f"订阅: {'有效' if sub.active else '无'}, 等级 {sub.level}, "
            f"到期 {_when(sub.access_ends_at)}; 钱包余额 {detail.wallet.balance} (纳单位)"
        )
        columns = ("id", "order_no", "plan_name", "amount_fen", "status", "created_at")
        emit(detail.orders, as_json=False, columns=columns, title="最近订单")

    run(job)


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


def _set_status(user_id: int, status: str, as_json: bool) -> None:
    from app.accounts.routes.users import UserOut

    async def job(ctx: AdminContext) -> None:
        await ctx.services.accounts.user(user_id)  # unknown id: a clear 404 message
        user = await ctx.services.accounts.set_status(user_id, status)
        emit(UserOut.model_validate(user), as_json=as_json)

    run(job)


@users_group.command("disable")
@click.argument("user_id", type=ID)
@json_option
@env_option
@cli_errors
def disable_cmd(user_id: int, as_json: bool) -> None:
    """Disable an account (its logins are revoked)."""
    _set_status(user_id, "disabled", as_json)


@users_group.command("enable")
@click.argument("user_id", type=ID)
@json_option
@env_option
@cli_errors
def enable_cmd(user_id: int, as_json: bool) -> None:
    """Enable an account again."""
    _set_status(user_id, "active", as_json)

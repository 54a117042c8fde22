"""``luser channels|prices|tokens|wallet ...``: open-API administration from the shell.

Options go through the admin API's input models and the same ``manage`` functions
as ``/api/admin/open/*``. Other nodes hear of the changes through the database
notifications those tables send, exactly as after an API call.
"""

from __future__ import annotations

from typing import Any

import click

from app.cli_admin import ID, AdminContext, emit, json_option, run, validated
from app.open_api import manage, routing_config
from luser_db.cli import cli_errors, env_option

__all__ = ["channels_group", "prices_group", "tokens_group", "wallet_group"]

CHANNEL_COLUMNS = ("id", "name", "provider", "base_url", "status", "priority", "weight")
TOKEN_COLUMNS = ("id", "user_id", "name", "key_hint", "status", "quota_limit", "used_quota")


def _box(ctx: AdminContext) -> Any:
    from app.open_api.secretbox import SecretBox

    cfg = ctx.config.open_api
    pepper = cfg.token_pepper.get_secret_value().encode()
    return SecretBox.from_config(cfg.channel_secret_key.get_secret_value(), pepper)


def _credentials(pairs: tuple[str, ...]) -> dict[str, str] | None:
    if not pairs:
        return None
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"应为 KEY=VALUE: {pair}", param_hint="--credential")
        out[key] = value
    return out


# -- channels ------------------------------------------------------------------------


@click.group("channels")
def channels_group() -> None:
    """Upstream channels of the open API: list, create, update, enable, disable."""


@channels_group.command("list")
@json_option
@env_option
@cli_errors
def channels_list(as_json: bool) -> None:
    """Every channel (credentials are never shown)."""

    async def job(ctx: AdminContext) -> None:
        emit(await routing_config.list_channels(), as_json=as_json, columns=CHANNEL_COLUMNS)

    run(job)


def _channel_options(fn: Any) -> Any:
    for option in reversed(
        (
            click.option("--name"),
            click.option("--base-url"),
            click.option("--priority", type=int),
            click.option("--weight", type=int),
            click.option("--credential", "credentials", multiple=True, help="KEY=VALUE"),
        )
    ):
        fn = option(fn)
    return fn


@channels_group.command("create")
@_channel_options
@click.option("--provider", type=click.Choice(["tencent", "aliyun"]), required=True)
@json_option
@env_option
@cli_errors
def channels_create(as_json: bool, credentials: tuple[str, ...], **options: Any) -> None:
    """Create a channel (enabled)."""
    from app.open_api.routes.admin import ChannelIn

    body = validated(ChannelIn, {**options, "credentials": _credentials(credentials)})

    async def job(ctx: AdminContext) -> None:
        emit(await routing_config.save_channel(body.model_dump(), _box(ctx)), as_json=as_json)

    run(job)


def _change_channel(channel_id: int, data: dict[str, Any], as_json: bool) -> None:
    from app.open_api.routes.admin import ChannelPatch

    body = validated(ChannelPatch, data)
    fields = body.model_dump(include=body.model_fields_set)

    async def job(ctx: AdminContext) -> None:
        emit(await routing_config.save_channel(fields, _box(ctx), channel_id), as_json=as_json)

    run(job)


@channels_group.command("update")
@click.argument("channel_id", type=ID)
@_channel_options
@json_option
@env_option
@cli_errors
def channels_update(
    channel_id: int, as_json: bool, credentials: tuple[str, ...], **options: Any
) -> None:
    """Change the given fields of a channel."""
    _change_channel(channel_id, {**options, "credentials": _credentials(credentials)}, as_json)


@channels_group.command("disable")
@click.argument("channel_id", type=ID)
@json_option
@env_option
@cli_errors
def channels_disable(channel_id: int, as_json: bool) -> None:
    """Stop routing calls to a channel."""
    _change_channel(channel_id, {"status": "disabled"}, as_json)


@channels_group.command("enable")
@click.argument("channel_id", type=ID)
@json_option
@env_option
@cli_errors
def channels_enable(channel_id: int, as_json: bool) -> None:
    """Route calls to a channel again."""
    _change_channel(channel_id, {"status": "enabled"}, as_json)


# -- prices --------------------------------------------------------------------------


@click.group("prices")
def prices_group() -> None:
    """Per-call prices of the open API's abilities."""


@prices_group.command("list")
@json_option
@env_option
@cli_errors
def prices_list(as_json: bool) -> None:
    """Every ability and its price (nano-yuan per call)."""

    async def job(ctx: AdminContext) -> None:
        emit(
            await routing_config.list_prices(),
            as_json=as_json,
            columns=("ability", "price", "description"),
        )

    run(job)


@prices_group.command("set")
@click.argument("ability")
@click.argument("price", type=int)
@click.option("--description", default=None, help="Kept as it is when omitted.")
@json_option
@env_option
@cli_errors
def prices_set(ability: str, price: int, description: str | None, as_json: bool) -> None:
    """Create an ability or change its PRICE (nano-yuan per call)."""
    from app.open_api.routes.admin import PriceIn

    body = validated(PriceIn, {"ability": ability, "price": price, "description": description})

    async def job(ctx: AdminContext) -> None:
        emit(await routing_config.set_price(body.ability, body.price, description), as_json=as_json)

    run(job)


# -- tokens --------------------------------------------------------------------------


@click.group("tokens")
def tokens_group() -> None:
    """Open-API tokens: list, show, create, enable, disable."""


def _token(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "key_hash"}


@tokens_group.command("list")
@click.option("--user-id", type=ID, default=None)
@click.option("--after-id", type=click.IntRange(0), default=0, help="Keyset cursor.")
@click.option("--limit", type=click.IntRange(1, 200), default=50, show_default=True)
@json_option
@env_option
@cli_errors
def tokens_list(user_id: int | None, after_id: int, limit: int, as_json: bool) -> None:
    """Tokens by id (optionally one user's)."""

    async def job(ctx: AdminContext) -> None:
        rows = await manage.list_tokens(user_id, after_id=after_id, limit=limit)
        emit([_token(r) for r in rows], as_json=as_json, columns=TOKEN_COLUMNS)

    run(job)


@tokens_group.command("show")
@click.argument("token_id", type=ID)
@json_option
@env_option
@cli_errors
def tokens_show(token_id: int, as_json: bool) -> None:
    """One token."""

    async def job(ctx: AdminContext) -> None:
        emit(_token(await manage.get_token(token_id)), as_json=as_json)

    run(job)


@tokens_group.command("create")
@click.option("--user-id", type=ID, required=True)
@click.option("--name", default="")
@click.option("--quota-limit", type=int, default=-1, help="Nano-yuan; -1 is unlimited.")
@json_option
@env_option
@cli_errors
def tokens_create(user_id: int, name: str, quota_limit: int, as_json: bool) -> None:
    """Create a token for a user; the key is printed once and never stored."""
    from app.open_api.routes.self_service import TokenIn

    body = validated(TokenIn, {"name": name, "quota_limit": quota_limit})
    spec = manage.TokenSpec(name=body.name, quota_limit=body.quota_limit)

    async def job(ctx: AdminContext) -> None:
        pepper = ctx.config.open_api.token_pepper.get_secret_value().encode()
        created = await manage.create_token(user_id, spec, pepper=pepper)
        emit({"key": created.key, **_token(created.token)}, as_json=as_json)

    run(job)


def _token_status(token_id: int, status: str, as_json: bool) -> None:
    async def job(ctx: AdminContext) -> None:
        row = await manage.update_token(token_id, manage.TokenSpec(status=status))
        emit(_token(row), as_json=as_json)

    run(job)


@tokens_group.command("disable")
@click.argument("token_id", type=ID)
@json_option
@env_option
@cli_errors
def tokens_disable(token_id: int, as_json: bool) -> None:
    """Disable a token (every node drops it on the change notification)."""
    _token_status(token_id, "disabled", as_json)


@tokens_group.command("enable")
@click.argument("token_id", type=ID)
@json_option
@env_option
@cli_errors
def tokens_enable(token_id: int, as_json: bool) -> None:
    """Enable a token again."""
    _token_status(token_id, "enabled", as_json)


# -- wallet --------------------------------------------------------------------------


@click.group("wallet")
def wallet_group() -> None:
    """Open-API wallets: balance, top-up, ledger."""


@wallet_group.command("show")
@click.argument("user_id", type=ID)
@json_option
@env_option
@cli_errors
def wallet_show(user_id: int, as_json: bool) -> None:
    """A user's balance (nano-yuan)."""

    async def job(ctx: AdminContext) -> None:
        emit(await manage.wallet(user_id), as_json=as_json)

    run(job)


@wallet_group.command("top-up")
@click.argument("user_id", type=ID)
@click.argument("amount", type=int)
@click.option("--adjust", is_flag=True, help="An adjustment (AMOUNT may be negative).")
@click.option("--reference", default=None, help="Idempotency key, e.g. a payment number.")
@click.option("--note", default="")
@json_option
@env_option
@cli_errors
def wallet_top_up(
    user_id: int, amount: int, adjust: bool, reference: str | None, note: str, as_json: bool
) -> None:
    """Credit AMOUNT nano-yuan to a wallet (ledgered; idempotent per --reference)."""
    from app.open_api.routes.admin import TopUpIn

    b = validated(
        TopUpIn,
        {
            "user_id": user_id,
            "amount": amount,
            "kind": "adjust" if adjust else "topup",
            "reference": reference,
            "note": note,
        },
    )

    async def job(ctx: AdminContext) -> None:
        row = await manage.top_up(
            b.user_id, b.amount, reference=b.reference, note=b.note, kind=b.kind
        )
        emit(row, as_json=as_json)

    run(job)


@wallet_group.command("ledger")
@click.argument("user_id", type=ID)
@click.option("--before-id", type=ID, default=None)
@click.option("--limit", type=click.IntRange(1, 200), default=50, show_default=True)
@json_option
@env_option
@cli_errors
def wallet_ledger(user_id: int, before_id: int | None, limit: int, as_json: bool) -> None:
    """A wallet's top-ups and adjustments, newest first."""

    async def job(ctx: AdminContext) -> None:
        rows = await manage.ledger(user_id, before_id=before_id, limit=limit)
        columns = ("id", "amount", "balance_after", "kind", "reference", "note", "created_at")
        emit(rows, as_json=as_json, columns=columns)

    run(job)

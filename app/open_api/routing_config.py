"""The open API's routing configuration, edited by administrators: upstream channels
(with sealed credentials), ability routes, prices, user groups and their members.

Like ``manage.py`` every statement goes through luser_db, and constraint violations
with a domain meaning are renamed (``manage_errors.constraint_errors``). The admin
routes refresh this node's routing config after a change; other nodes hear of it
through the ``open_api_config`` notification sent by database triggers.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from app.open_api.manage_errors import constraint_errors
from app.open_api.models import AbilityPrice, AbilityRoute, Channel, GroupMember, UserGroup
from app.open_api.money import parse_ratio
from app.open_api.secretbox import SecretBox
from luser_common import DuplicateError, NotFound, ValidationError
from luser_db import Db

__all__ = [
    "delete_ability",
    "delete_channel",
    "group_ratio",
    "list_abilities",
    "list_channels",
    "list_groups",
    "list_prices",
    "save_ability",
    "save_channel",
    "save_group",
    "set_member",
    "set_price",
]

CREDENTIALS_AAD = "open_api.channels.credentials"
# user_groups.ratio is numeric(12, 6).
MAX_RATIO = Decimal("999999.999999")


# -- channels ----------------------------------------------------------------------

_CHANNEL_FIELDS = ("name", "provider", "base_url", "status", "priority", "weight")
_BASE_URL = re.compile(r"^https?://[^\s]+$")


def _channel_values(data: dict[str, Any], box: SecretBox) -> dict[str, Any]:
    """Column values from ``data``; credentials are sealed before they are stored."""
    values = {k: data[k] for k in _CHANNEL_FIELDS if k in data}
    url = values.get("base_url")
    if url and not _BASE_URL.match(str(url)):
        raise ValidationError("base_url 必须是 http(s) 地址", field="base_url")
    if "credentials" in data:
        creds = data["credentials"]
        if not isinstance(creds, dict):
            raise ValidationError("credentials 必须是对象", field="credentials")
        values["credentials"] = box.seal(creds, CREDENTIALS_AAD)
    return values


async def save_channel(
    data: dict[str, Any], box: SecretBox, channel_id: int | None = None
) -> dict[str, Any]:
    """Create (channel_id None) or update a channel."""
    values = _channel_values(data, box)
    name_taken = DuplicateError("通道名称已存在", field="name")
    with constraint_errors(channels_name_key=name_taken):
        if channel_id is None:
            channel = await _new_channel(values)
        else:
            channel = await _changed_channel(channel_id, values)
    return channel.public()


async def _new_channel(values: dict[str, Any]) -> Channel:
    if not {"name", "provider"} <= values.keys():
        raise ValidationError("需要 name 和 provider", field="name")
    channel = Channel(**values)
    await channel.save()
    return channel


async def _changed_channel(channel_id: int, values: dict[str, Any]) -> Channel:
    if not values:
        raise ValidationError("没有要修改的字段")
    channel = await Channel.find_by_id(channel_id)
    if channel is None:
        raise NotFound("通道不存在")
    for name, value in values.items():
        setattr(channel, name, value)
    if not await channel.update():
        raise NotFound("通道不存在")  # deleted since it was read
    return channel


async def list_channels() -> list[dict[str, Any]]:
    return [c.public() for c in await Channel.query().order_by("id").all()]


async def delete_channel(channel_id: int) -> None:
    if not await Channel.query().where("id = ?", channel_id).delete():
        raise NotFound("通道不存在")


# -- abilities, prices, groups -----------------------------------------------------


async def save_ability(
    group: str,
    ability: str,
    channel_id: int,
    *,
    enabled: bool = True,
    priority: int | None = None,
    weight: int | None = None,
) -> dict[str, Any]:
    """Route ``ability`` of ``group`` to a channel (created, or its settings replaced)."""
    route = AbilityRoute(
        group_name=group,
        ability=ability,
        channel_id=channel_id,
        enabled=enabled,
        priority=priority,
        weight=weight,
    )
    with constraint_errors(
        abilities_group_name_fkey=NotFound("分组不存在", field="group"),
        abilities_ability_fkey=NotFound("能力不存在, 请先设置它的价格", field="ability"),
        abilities_channel_id_fkey=NotFound("通道不存在", field="channel_id"),
    ):
        await route.upsert(
            ("group_name", "ability", "channel_id"), update=("enabled", "priority", "weight")
        )
    return route.to_dict()


async def list_abilities() -> list[dict[str, Any]]:
    routes = await AbilityRoute.query().order_by("group_name", "ability", "id").all()
    return [r.to_dict() for r in routes]


async def delete_ability(ability_id: int) -> None:
    if not await AbilityRoute.query().where("id = ?", ability_id).delete():
        raise NotFound("能力路由不存在")


async def set_price(ability: str, price: int, description: str | None = None) -> dict[str, Any]:
    """Create or reprice an ability; ``description`` None keeps the stored one."""
    row = AbilityPrice(ability=ability, price=price)
    changed = ["price", "updated_at"]
    if description is not None:
        row.description = description
        changed.append("description")
    await row.upsert("ability", update=changed)
    return row.to_dict()


async def list_prices() -> list[dict[str, Any]]:
    return [p.to_dict() for p in await AbilityPrice.query().order_by("ability").all()]


def group_ratio(value: object) -> Decimal:
    """A group's price ratio: a positive decimal with at most 6 places that fits the column."""
    ratio = parse_ratio(value)
    if ratio > MAX_RATIO:
        raise ValidationError(f"比例不能超过 {MAX_RATIO}", field="ratio")
    return ratio


async def save_group(name: str, ratio: object, description: str | None = None) -> dict[str, Any]:
    """Create a group or change its ratio; ``description`` None keeps the stored one."""
    group = UserGroup(name=name, ratio=group_ratio(ratio))
    changed = ["ratio", "updated_at"]
    if description is not None:
        group.description = description
        changed.append("description")
    await group.upsert("name", update=changed)
    return group.to_dict()


async def list_groups() -> list[dict[str, Any]]:
    return [g.to_dict() for g in await UserGroup.query().order_by("name").all()]


async def set_member(user_id: int, group: str) -> None:
    """Put a user in ``group``; 'default' is the absence of a membership."""
    if group == "default":
        left = await GroupMember.query().where("user_id = ?", user_id).delete()
        if not left and not await Db.query("users").where("id = ?", user_id).exists():
            raise NotFound("用户不存在", field="user_id")
        return
    member = GroupMember(user_id=user_id, group_name=group)
    with constraint_errors(
        group_members_user_id_fkey=NotFound("用户不存在", field="user_id"),
        group_members_group_name_fkey=NotFound("分组不存在", field="group"),
    ):
        await member.upsert("user_id", update=("group_name",))

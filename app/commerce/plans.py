"""Plans: admin CRUD and the public list."""

from __future__ import annotations

from typing import Any

from app.commerce.errors import PlanNotFound
from app.commerce.models import Order, Plan
from luser_common import Page
from luser_common.errors import Conflict

__all__ = ["Plans"]


class Plans:
    async def public(self) -> list[Plan]:
        return await Plan.query().where("active").order_by("sort_order", "id").all()

    async def admin_page(self, page: int, size: int, active: bool | None = None) -> Page[Plan]:
        query = Plan.query()
        if active is not None:
            query = query.where("active = ?", active)
        return await query.order_by("sort_order", "id").paginate(page, size)

    async def get(self, plan_id: int) -> Plan:
        plan = await Plan.find_by_id(plan_id)
        if plan is None:
            raise PlanNotFound()
        return plan

    async def create(self, **values: Any) -> Plan:
        plan = Plan(**values)
        await plan.save()
        return plan

    async def update(self, plan_id: int, **changes: Any) -> Plan:
        plan = await self.get(plan_id)
        for name, value in changes.items():
            setattr(plan, name, value)
        await plan.update()
        return plan

    async def delete(self, plan_id: int) -> None:
        """Delete a plan nobody ordered; an ordered plan can only be deactivated."""
        plan = await self.get(plan_id)
        if await Order.query().where("plan_id = ?", plan_id).exists():
            raise _ordered(plan_id)
        try:
            await plan.delete()
        except Conflict as exc:  # ordered meanwhile: the orders' foreign key
            raise _ordered(plan_id) from exc


def _ordered(plan_id: int) -> Conflict:
    return Conflict("套餐已有订单, 不能删除, 请改为下架", details={"plan_id": plan_id})

"""Plans: the public list and admin CRUD."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictInt

from app.commerce.routes.schemas import Fen, PageQuery, PlanOut, PlanPage
from app.web.operation import Call, Operation, operation
from app.web.types import Input, Output, Text

Level = Annotated[StrictInt, Field(ge=1, le=100, description="等级, 越大越高")]
Days = Annotated[StrictInt, Field(ge=1, le=3660)]


class PlanIn(Input):
    name: Text = Field(min_length=1, max_length=64)
    description: Text = Field("", max_length=500)
    level: Level
    duration_days: Days
    price_fen: Fen
    active: bool = True
    sort_order: StrictInt = Field(0, ge=-10_000, le=10_000)


class PlanPatch(Input):
    name: Text | None = Field(None, min_length=1, max_length=64)
    description: Text | None = Field(None, max_length=500)
    level: Level | None = None
    duration_days: Days | None = None
    price_fen: Fen | None = None
    active: bool | None = None
    sort_order: StrictInt | None = Field(None, ge=-10_000, le=10_000)


class PlanAdminQuery(PageQuery):
    active: bool | None = None


class DeletedOut(Output):
    deleted: bool


@operation("GET", "/api/plans", summary="Plans on sale", tag="commerce", response=list[PlanOut])
async def list_plans(call: Call) -> list[PlanOut]:
    return [PlanOut.model_validate(p) for p in await call.services.commerce.plans.public()]


@operation(
    "GET",
    "/api/admin/plans",
    summary="All plans, paginated",
    tag="admin",
    query=PlanAdminQuery,
    response=PlanPage,
    access="admin",
)
async def admin_list_plans(call: Call) -> PlanPage:
    q: PlanAdminQuery = call.query
    page = await call.services.commerce.plans.admin_page(q.page, q.size, q.active)
    return PlanPage.model_validate(page.to_dict(PlanOut.model_validate))


@operation(
    "POST",
    "/api/admin/plans",
    summary="Create a plan",
    tag="admin",
    body=PlanIn,
    response=PlanOut,
    status=201,
    access="admin",
    errors=(422,),
)
async def create_plan(call: Call) -> PlanOut:
    body: PlanIn = call.body
    return PlanOut.model_validate(await call.services.commerce.plans.create(**body.model_dump()))


@operation(
    "GET",
    "/api/admin/plans/{id}",
    summary="One plan",
    tag="admin",
    response=PlanOut,
    access="admin",
    errors=(404,),
)
async def get_plan(call: Call) -> PlanOut:
    return PlanOut.model_validate(await call.services.commerce.plans.get(call.path_id()))


@operation(
    "PATCH",
    "/api/admin/plans/{id}",
    summary="Change a plan (orders keep their snapshot)",
    tag="admin",
    body=PlanPatch,
    response=PlanOut,
    access="admin",
    errors=(404, 422),
)
async def update_plan(call: Call) -> PlanOut:
    body: PlanPatch = call.body
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    plan = await call.services.commerce.plans.update(call.path_id(), **changes)
    return PlanOut.model_validate(plan)


@operation(
    "DELETE",
    "/api/admin/plans/{id}",
    summary="Delete a plan nobody ordered",
    tag="admin",
    response=DeletedOut,
    access="admin",
    errors=(404, 409),
)
async def delete_plan(call: Call) -> DeletedOut:
    await call.services.commerce.plans.delete(call.path_id())
    return DeletedOut(deleted=True)


OPERATIONS: list[Operation] = [
    list_plans,
    admin_list_plans,
    create_plan,
    get_plan,
    update_plan,
    delete_plan,
]

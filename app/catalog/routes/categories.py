"""Categories: a public list, admin create/update/delete."""

from __future__ import annotations

from pydantic import Field

from app.web.operation import Call, Operation, operation
from app.web.types import Input, Output, Patch, Text

SLUG = r"^[a-z0-9][a-z0-9-]{0,63}$"


class CategoryOut(Output):
    id: int
    name: str
    slug: str
    sort_order: int


class CategoryBody(Input):
    name: Text = Field(min_length=1, max_length=64)
    slug: Text = Field(pattern=SLUG)
    sort_order: int = Field(0, ge=-100_000, le=100_000)


class CategoryPatch(Patch):
    name: Text | None = Field(None, min_length=1, max_length=64)
    slug: Text | None = Field(None, pattern=SLUG)
    sort_order: int | None = Field(None, ge=-100_000, le=100_000)


class DeletedOut(Output):
    deleted: bool


@operation(
    "GET", "/api/categories", summary="All categories", tag="catalog", response=list[CategoryOut]
)
async def list_categories(call: Call) -> list[CategoryOut]:
    return [CategoryOut.model_validate(c) for c in await call.services.catalog.categories()]


@operation(
    "POST",
    "/api/admin/categories",
    summary="Create a category",
    tag="admin",
    body=CategoryBody,
    response=CategoryOut,
    status=201,
    access="admin",
    errors=(409,),
)
async def create_category(call: Call) -> CategoryOut:
    body: CategoryBody = call.body
    created = await call.services.catalog.create_category(body.name, body.slug, body.sort_order)
    return CategoryOut.model_validate(created)


@operation(
    "PATCH",
    "/api/admin/categories/{id}",
    summary="Update a category",
    tag="admin",
    body=CategoryPatch,
    response=CategoryOut,
    access="admin",
    errors=(404, 409),
)
async def update_category(call: Call) -> CategoryOut:
    changes = call.body.model_dump(exclude_unset=True)
    updated = await call.services.catalog.update_category(call.path_id(), changes)
    return CategoryOut.model_validate(updated)


@operation(
    "DELETE",
    "/api/admin/categories/{id}",
    summary="Delete a category that no video uses (409 CATEGORY_IN_USE otherwise)",
    tag="admin",
    response=DeletedOut,
    access="admin",
    errors=(404, 409),
)
async def delete_category(call: Call) -> DeletedOut:
    await call.services.catalog.delete_category(call.path_id())
    return DeletedOut(deleted=True)


OPERATIONS: list[Operation] = [list_categories, create_category, update_category, delete_category]

"""The operator console's catalog and price list: categories and plans.

Forms are validated by the admin API's own models (``CategoryBody``, ``PlanIn``,
``PlanPatch``) and saved by the same service methods.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.catalog.routes.categories import CategoryBody
from app.commerce.routes.plans import PlanIn, PlanPatch
from app.site.console import back, yuan_to_fen
from app.site.context import services
from app.site.render import int_param, page, path_id, read_form, render, validate
from luser_common import AppError, ValidationError


@page(admin=True)
async def categories(request: Request) -> Response:
    return await _categories_page(request, {}, None)


async def _categories_page(
    request: Request, form: dict[str, str], error: AppError | None
) -> Response:
    found = await services(request).catalog.categories()
    context = {"categories": found, "form": form, "error": error}
    return render(request, "console/categories.html", context, error.status_code if error else 200)


def _int(form: dict[str, str], name: str, default: int = 0) -> int:
    raw = form.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationError("请输入整数", field=name) from None


@page(admin=True)
async def create_category(request: Request) -> Response:
    form = await read_form(request)
    try:
        data = {"name": form.get("name", ""), "slug": form.get("slug", "")}
        body = validate(CategoryBody, {**data, "sort_order": _int(form, "sort_order")})
        await services(request).catalog.create_category(body.name, body.slug, body.sort_order)
    except AppError as err:
        return await _categories_page(request, form, err)
    return back("/console/categories", f"分类 “{body.name}” 已创建")


@page(admin=True)
async def delete_category(request: Request) -> Response:
    await read_form(request)
    category_id = path_id(request)
    await services(request).catalog.delete_category(category_id)
    return back("/console/categories", f"分类 #{category_id} 已删除")


@page(admin=True)
async def plans(request: Request) -> Response:
    return await _plans_page(request, {}, None)


async def _plans_page(request: Request, form: dict[str, str], error: AppError | None) -> Response:
    found = await services(request).commerce.plans.admin_page(int_param(request, "page"), 50)
    context = {"plans": found, "form": form, "error": error}
    return render(request, "console/plans.html", context, error.status_code if error else 200)


@page(admin=True)
async def create_plan(request: Request) -> Response:
    form = await read_form(request)
    try:
        body = validate(
            PlanIn,
            {
                "name": form.get("name", ""),
                "description": form.get("description", ""),
                "level": _int(form, "level", 1),
                "duration_days": _int(form, "duration_days", 30),
                "price_fen": yuan_to_fen(form.get("price_yuan", ""), "price_yuan"),
                "active": form.get("active") == "on",
                "sort_order": _int(form, "sort_order"),
            },
        )
        plan = await services(request).commerce.plans.create(**body.model_dump())
    except AppError as err:
        return await _plans_page(request, form, err)
    return back("/console/plans", f"套餐 “{plan.name}” 已创建")


@page(admin=True)
async def toggle_plan(request: Request) -> Response:
    await read_form(request)
    plans_service = services(request).commerce.plans
    plan = await plans_service.get(path_id(request))
    body = validate(PlanPatch, {"active": not plan.active})
    await plans_service.update(plan.id, **body.model_dump(exclude_unset=True))
    return back("/console/plans", f"套餐 “{plan.name}” 已{'上架' if body.active else '下架'}")

"""The operator console's money view: net revenue per Beijing day as a chart, active
subscribers, and a reconciliation pass on demand (the admin API's own handler)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.commerce.queries import active_subscribers, daily_revenue
from app.commerce.routes.admin import reconcile_now
from app.site.chart import bar_chart
from app.site.render import current_user, page, read_form, render
from app.web.operation import Call

REVENUE_DAYS = 30


async def _revenue_page(request: Request, report: object | None) -> Response:
    days = (await daily_revenue(1, REVENUE_DAYS)).items  # newest first
    chart = bar_chart([(str(d["day"]), int(d["net_fen"])) for d in reversed(days)])
    subscribers = (await active_subscribers(1, 1)).total_row
    context = {"days": days, "chart": chart, "subscribers": subscribers, "report": report}
    return render(request, "console/revenue.html", context)


@page(admin=True)
async def revenue(request: Request) -> Response:
    return await _revenue_page(request, None)


@page(admin=True)
async def reconcile(request: Request) -> Response:
    await read_form(request)
    report = await reconcile_now.handler(Call(request, user=current_user(request)))
    return await _revenue_page(request, report)

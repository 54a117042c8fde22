"""The console's bill reconciliation report: the stored daily bills with their
missing / extra / mismatched counts, one bill's findings, and reconciling a day's
bill (the ``POST /api/admin/payments/bills`` handler).

The bills are read through the commerce reconciler (``stored_bills`` / ``stored_bill``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from app.commerce.routes.admin import BillIn, reconcile_bill
from app.site.context import services
from app.site.render import current_user, page, path_id, read_form, redirect, render, validate
from app.web.operation import Call
from luser_common import AppError

FINDING_NAMES = {"missing": "账单缺少", "extra": "账单多出", "mismatch": "金额不符"}


async def _bills_page(
    request: Request, form: dict[str, str] | None = None, error: AppError | None = None
) -> Response:
    yesterday = (datetime.now(UTC) + timedelta(hours=8) - timedelta(days=1)).date()
    context = {
        "bills": await services(request).commerce.reconciler.stored_bills(),
        "channels": services(request).commerce.providers.names(),
        "form": form or {"date": yesterday.isoformat()},
        "error": error,
        "section": "bills",
    }
    return render(request, "console/bills.html", context, error.status_code if error else 200)


@page(admin=True)
async def bills(request: Request) -> Response:
    return await _bills_page(request)


@page(admin=True)
async def bill(request: Request) -> Response:
    found = await services(request).commerce.reconciler.stored_bill(path_id(request))
    context = {"bill": found, "finding_names": FINDING_NAMES, "section": "bills"}
    return render(request, "console/bill.html", context)


@page(admin=True)
async def reconcile(request: Request) -> Response:
    form = await read_form(request)
    try:
        body = validate(
            BillIn, {"provider": form.get("provider", ""), "date": form.get("date", "")}
        )
        report = await reconcile_bill.handler(Call(request, body=body, user=current_user(request)))
    except AppError as err:
        return await _bills_page(request, form, err)
    return redirect(f"/console/bills/{report.bill_id}")

"""HTTP routes of the open API, one module per audience: the partner API under
/open/v1 (``partner``), token management under /api/tokens (``self_service``),
administration under /api/admin/open (``admin``) and Prometheus metrics at
/metrics (``metrics``)."""

from __future__ import annotations

from app.open_api.routes import admin, partner, self_service
from app.open_api.routes.metrics import metrics_route
from app.web.operation import Operation

__all__ = ["OPERATIONS", "metrics_route"]

OPERATIONS: list[Operation] = [
    *partner.OPERATIONS,
    *self_service.OPERATIONS,
    *admin.OPERATIONS,
]

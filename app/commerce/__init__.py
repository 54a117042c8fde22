"""Commerce: plans, orders, Alipay / WeChat Pay payments, subscriptions, reconciliation.

Wiring into the app (see docs/payments.md)::

    from app.commerce import SubscriptionEntitlements, install
    app = create_app(entitlements=SubscriptionEntitlements())
    install(app)          # routes + lifespan hook (services, reconciliation job)

Money is integer fen everywhere; a payment is applied at most once per order.
"""

from app.commerce.models import Order, PaymentAttempt, PaymentEvent, Plan, Refund, Subscription
from app.commerce.reconcile import Reconciler, ReconcileReport
from app.commerce.routes import OPERATIONS
from app.commerce.schedule import Grant, Piece, schedule
from app.commerce.service import Commerce, commerce_lifespan, install
from app.commerce.subscriptions import SubscriptionEntitlements, Subscriptions

__all__ = [
    "OPERATIONS",
    "Commerce",
    "Grant",
    "Order",
    "PaymentAttempt",
    "PaymentEvent",
    "Piece",
    "Plan",
    "ReconcileReport",
    "Reconciler",
    "Refund",
    "Subscription",
    "SubscriptionEntitlements",
    "Subscriptions",
    "commerce_lifespan",
    "install",
    "schedule",
]

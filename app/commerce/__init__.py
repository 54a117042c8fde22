"""Commerce: plans, orders, Alipay / WeChat Pay payments, subscriptions, reconciliation.

``app.commerce.feature`` is the feature ``create_app`` composes (operations +
reconciliation job); the services live in the container as ``services.commerce``.

Money is integer fen everywhere; a payment is applied at most once per order.
"""

from app.commerce.models import Order, PaymentAttempt, PaymentEvent, Plan, Refund, Subscription
from app.commerce.reconcile import Reconciler, ReconcileReport
from app.commerce.schedule import Grant, Piece, schedule
from app.commerce.service import Commerce
from app.commerce.subscriptions import SubscriptionEntitlements, Subscriptions

__all__ = [
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
    "schedule",
]

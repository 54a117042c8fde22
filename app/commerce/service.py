"""The commerce services, built once per application into the services container
(``call.services.commerce``); ``app.commerce.feature`` runs the reconciliation job."""

from __future__ import annotations

from dataclasses import dataclass

from app.commerce.notifications import Payments
from app.commerce.orders import Orders
from app.commerce.plans import Plans
from app.commerce.reconcile import Reconciler
from app.commerce.refunds import Refunds
from app.commerce.subscriptions import Subscriptions
from app.payments import PaymentProviders, build_providers
from app.settings import AppConfig

__all__ = ["Commerce"]


@dataclass
class Commerce:
    """Everything the commerce routes and jobs use."""

    config: AppConfig
    providers: PaymentProviders
    plans: Plans
    orders: Orders
    subscriptions: Subscriptions
    refunds: Refunds
    payments: Payments
    reconciler: Reconciler

    @classmethod
    def build(cls, config: AppConfig, providers: PaymentProviders | None = None) -> Commerce:
        """Providers default to the enabled ones in ``config.payment`` (offline: no I/O)."""
        providers = providers if providers is not None else build_providers(config.payment)
        subscriptions = Subscriptions()
        orders = Orders(providers, config.payment)
        refunds = Refunds(providers, subscriptions)
        payments = Payments(providers, subscriptions, refunds)
        reconciler = Reconciler(providers, config.payment, orders, payments, refunds)
        return cls(config, providers, Plans(), orders, subscriptions, refunds, payments, reconciler)

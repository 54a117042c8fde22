"""The payment registry is the one place a provider is named: every registered provider
has its config section, its notify route, a request field that accepts it and a sandbox
stand-in that configures a working provider."""

from __future__ import annotations

import httpx
import pytest

from app.commerce.routes.schemas import OrderIn
from app.payments.factory import PAYMENT_PROVIDERS, build_providers, payment_section
from app.sandbox.runtime import load_stand_in
from app.settings import PaymentConfig, payment_config_model


@pytest.mark.parametrize("name", sorted(PAYMENT_PROVIDERS))
async def test_every_registered_provider_is_wired_everywhere(
    name: str, shop: httpx.AsyncClient
) -> None:
    spec = PAYMENT_PROVIDERS[name]
    assert spec.provider.name == name
    assert isinstance(payment_section(PaymentConfig(), name), spec.config)
    order = OrderIn.model_validate({"plan_id": 1, "provider": name, "method": "native"})
    assert order.provider == name
    # The notify route reaches the provider, which refuses an unsigned body (not a 404).
    r = await shop.post(f"/api/payments/notify/{name}", content=b"x=1")
    assert r.status_code not in (404, 405), r.text
    assert r.status_code >= 400 or r.text == "failure", r.text  # the provider's own refusal
    # Its stand-in runs and configures an enabled provider.
    stand_in = load_stand_in(spec.sandbox)
    stand_in.start()
    try:
        section = stand_in.sandbox_config("http://127.0.0.1:9")
        assert isinstance(section, spec.config)
        providers = build_providers(payment_config_model()(**{name: section}))
        assert providers.names() == [name]
        assert providers.get(name).methods
    finally:
        stand_in.stop()


async def test_unregistered_names_are_refused(shop: httpx.AsyncClient) -> None:
    r = await shop.post("/api/payments/notify/paypal", content=b"x=1")
    assert r.status_code == 404, r.text
    with pytest.raises(ValueError, match="不支持的支付渠道"):
        OrderIn.model_validate({"plan_id": 1, "provider": "paypal", "method": "native"})

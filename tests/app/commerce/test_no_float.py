"""No float ever touches an amount: not in the code, not in the schema, not in the models,
not on the wire."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from starlette.applications import Starlette

from app.commerce.models import Order, PaymentAttempt, PaymentEvent, Plan, Refund
from luser_common.errors import ValidationError
from luser_db import Db

COMMERCE = Path(__file__).resolve().parents[3] / "app" / "commerce"


def test_commerce_code_has_no_float_at_all() -> None:
    found = []
    for path in sorted(COMMERCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Name) and node.id == "float":
                found.append(f"{path.name}:{node.lineno} float")
            if isinstance(node, ast.Constant) and isinstance(node.value, float):
                found.append(f"{path.name}:{node.lineno} {node.value!r}")
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                found.append(f"{path.name}:{node.lineno} true division")
    assert found == []


async def test_every_amount_column_is_bigint(shop_app: Starlette) -> None:
    rows = await Db.find(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public' AND column_name LIKE '%\\_fen' AND table_name IN"
        " ('plans', 'orders', 'payment_attempts', 'payment_events', 'refunds')"
    )
    assert len(rows) == 6
    assert {r["data_type"] for r in rows} == {"bigint"}


@pytest.mark.parametrize(
    "model, field",
    [
        (Plan, "price_fen"),
        (Order, "amount_fen"),
        (Order, "refunded_fen"),
        (PaymentAttempt, "amount_fen"),
        (PaymentEvent, "amount_fen"),
        (Refund, "amount_fen"),
    ],
)
@pytest.mark.parametrize("value", [30.0, 29.9])
def test_models_refuse_float_amounts(model: type, field: str, value: float) -> None:
    with pytest.raises(ValidationError):
        model(**{field: value})

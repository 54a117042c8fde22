"""Money is integer nano-units (1 CNY = 10**9). Never a float.

A call costs ``price(ability) * ratio(group)``. The ratio is a Decimal with at
most six decimals; the product is rounded half-up to a whole nano-unit, which
is deterministic on every platform and never drifts by more than 0.5 nano.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from luser_common import ValidationError

__all__ = ["NANO_PER_CNY", "call_cost", "cny_to_nano", "nano_to_cny", "parse_ratio"]

NANO_PER_CNY = 10**9


def call_cost(price: int, ratio: Decimal) -> int:
    """Cost in nano-units of one call of ``price`` nano-units in a group of ``ratio``."""
    return int((Decimal(price) * ratio).to_integral_value(rounding=ROUND_HALF_UP))


def parse_ratio(value: object, field: str = "ratio") -> Decimal:
    """A positive Decimal with at most 6 places, from str/int/Decimal (floats refused)."""
    if isinstance(value, float | bool):
        raise ValidationError('比例必须以字符串或整数给出, 例如 "0.8"', field=field)
    try:
        ratio = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValidationError("比例格式错误", field=field) from exc
    if not ratio.is_finite() or ratio <= 0 or ratio.as_tuple().exponent < -6:  # type: ignore[operator]
        raise ValidationError("比例必须大于 0 且最多 6 位小数", field=field)
    return ratio


def cny_to_nano(value: str | int) -> int:
    """``"12.5"`` CNY -> 12_500_000_000 nano-units; more than 9 decimals is refused."""
    try:
        amount = Decimal(str(value)) * NANO_PER_CNY
    except InvalidOperation as exc:
        raise ValidationError("金额格式错误", field="amount") from exc
    if not amount.is_finite() or amount != amount.to_integral_value():
        raise ValidationError("金额最多 9 位小数", field="amount")
    return int(amount)


def nano_to_cny(value: int) -> str:
    """12_500_000_000 -> ``"12.500000000"`` (exact, for display)."""
    return str((Decimal(value) / NANO_PER_CNY).quantize(Decimal("0.000000001")))

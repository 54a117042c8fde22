"""Money is integer fen (分) everywhere; yuan strings exist only on the wire.

Alipay speaks yuan strings (``"30.00"``), WeChat Pay speaks integer fen. The two
conversions here are exact string arithmetic: no float ever holds an amount, and
anything that is not an exact, non-negative amount is refused.
"""

from __future__ import annotations

import re

from luser_common.errors import ValidationError

__all__ = ["MAX_FEN", "fen_to_yuan_str", "require_fen", "yuan_str_to_fen"]

# 10^12 fen = 10 billion yuan: far above any real order, well inside bigint.
MAX_FEN = 10**12

# No sign, no exponent, no leading zeros, no whitespace, at most two decimals.
_YUAN = re.compile(r"(0|[1-9][0-9]{0,10})(?:\.([0-9]{1,2}))?")


def require_fen(value: object, field: str = "amount_fen", *, allow_zero: bool = False) -> int:
    """Return ``value`` if it is an int amount in fen, else raise ValidationError.

    ``bool`` and ``float`` are refused on purpose: ``True`` is an int to Python,
    and ``30.0`` would hide rounding bugs.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{field} 必须是以分为单位的整数", field=field)
    low = 0 if allow_zero else 1
    if not low <= value <= MAX_FEN:
        raise ValidationError(f"{field} 超出允许范围", field=field)
    return value


def fen_to_yuan_str(fen: int, field: str = "amount_fen") -> str:
    """``3000 -> "30.00"``; ``5 -> "0.05"``. Refuses non-int and negative input."""
    fen = require_fen(fen, field, allow_zero=True)
    return f"{fen // 100}.{fen % 100:02d}"


def yuan_str_to_fen(value: object, field: str = "amount") -> int:
    """``"30.00" -> 3000``; ``"0.5" -> 50``; ``"30" -> 3000``.

    Only a plain decimal string is accepted: floats, Decimals, negative values,
    more than two decimals, exponents, spaces or garbage raise ValidationError.
    """
    if not isinstance(value, str):
        raise ValidationError(f"{field} 必须是金额字符串 (如 30.00)", field=field)
    match = _YUAN.fullmatch(value)
    if match is None:
        raise ValidationError(f"{field} 不是合法的金额: 最多两位小数的非负数", field=field)
    whole, cents = match.group(1), (match.group(2) or "").ljust(2, "0")
    return require_fen(int(whole) * 100 + int(cents), field, allow_zero=True)

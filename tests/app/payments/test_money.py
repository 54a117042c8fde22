"""Integer fen <-> yuan strings, and the rule that no float touches an amount."""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.payments.money import MAX_FEN, fen_to_yuan_str, require_fen, yuan_str_to_fen
from luser_common.errors import ValidationError

PAYMENTS = Path(__file__).resolve().parents[3] / "app" / "payments"


@pytest.mark.parametrize(
    ("fen", "text"),
    [(3000, "30.00"), (5, "0.05"), (0, "0.00"), (10, "0.10"), (123456, "1234.56")],
)
def test_fen_to_yuan_str(fen: int, text: str) -> None:
    assert fen_to_yuan_str(fen) == text


@pytest.mark.parametrize("bad", [30.0, True, -1, "3000", Decimal("30"), None, MAX_FEN + 1])
def test_fen_to_yuan_str_rejects(bad: object) -> None:
    with pytest.raises(ValidationError):
        fen_to_yuan_str(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "fen"),
    [("30.00", 3000), ("30", 3000), ("0.5", 50), ("0.01", 1), ("1234.56", 123456), ("0", 0)],
)
def test_yuan_str_to_fen(text: str, fen: int) -> None:
    assert yuan_str_to_fen(text) == fen


@pytest.mark.parametrize(
    "bad",
    [
        30.0,
        30,
        Decimal("30.00"),
        None,
        "-1.00",
        "1.001",
        "1e3",
        " 30.00",
        "30.00 ",
        "30.",
        ".5",
        "030.00",
        "abc",
        "",
        "NaN",
        "Infinity",
        "30,00",
        "+1",
        "１２",
        "0x10",
        "1_000",
    ],
)
def test_yuan_str_to_fen_rejects(bad: object) -> None:
    with pytest.raises(ValidationError) as info:
        yuan_str_to_fen(bad)
    assert info.value.status_code == 422


@given(st.integers(min_value=0, max_value=MAX_FEN))
def test_round_trip(fen: int) -> None:
    assert yuan_str_to_fen(fen_to_yuan_str(fen)) == fen


def test_require_fen() -> None:
    assert require_fen(1) == 1
    with pytest.raises(ValidationError):
        require_fen(0)
    assert require_fen(0, allow_zero=True) == 0
    for bad in (1.0, False, "1"):
        with pytest.raises(ValidationError):
            require_fen(bad)


def _float_uses(path: Path) -> list[str]:
    """Float names, float literals and true division; ``# float-ok: why`` exempts a line."""
    source = path.read_text()
    exempt = {n for n, line in enumerate(source.splitlines(), 1) if "# float-ok:" in line}
    found = []
    for node in ast.walk(ast.parse(source, str(path))):
        if getattr(node, "lineno", None) in exempt:
            continue
        if isinstance(node, ast.Name) and node.id == "float":
            found.append(f"{path.name}:{node.lineno} uses float")
        elif isinstance(node, ast.Constant) and isinstance(node.value, float):
            found.append(f"{path.name}:{node.lineno} float literal {node.value!r}")
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.Div):
            found.append(f"{path.name}:{node.lineno} true division")
    return found


def test_no_float_in_payment_code() -> None:
    """No float type, float literal or true division anywhere in app/payments."""
    files = sorted(PAYMENTS.rglob("*.py"))
    assert len(files) >= 8
    problems = [problem for path in files for problem in _float_uses(path)]
    assert problems == []


def test_float_detector_works(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("x = float('1')\ny = 0.5\nz = 3 / 2\nt = 0.5  # float-ok: seconds\n")
    assert len(_float_uses(sample)) == 3

"""Bar charts drawn on the server as SVG geometry: no chart library, no JavaScript."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT = 600, 160
MAX_BAR = 48  # a few days should not draw as one wall of colour


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    x: float
    width: float
    height: float


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    total: int
    width: int = WIDTH
    height: int = HEIGHT


def bar_chart(points: list[tuple[str, int]]) -> Chart:
    """Bars scaled to the largest value; negative values draw as empty bars."""
    peak = max((value for _, value in points), default=0)
    step = min(WIDTH / max(len(points), 1), MAX_BAR / 0.8)
    bars = [
        Bar(
            label,
            value,
            x=round(i * step + step * 0.1, 1),
            width=round(step * 0.8, 1),
            height=round(HEIGHT * max(value, 0) / peak, 1) if peak > 0 else 0,
        )
        for i, (label, value) in enumerate(points)
    ]
    return Chart(bars, sum(value for _, value in points))

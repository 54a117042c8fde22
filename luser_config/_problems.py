"""Collect every problem, then raise one error that lists them all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from luser_common import ConfigError, EncryptionError

from .sources.base import Source

__all__ = ["REDACTED", "Problem", "raise_problems"]

REDACTED = "******"


@dataclass(frozen=True)
class Problem:
    """One thing wrong: the key path, what is wrong, where it came from, the (safe) value."""

    key: str
    message: str
    source: Source | None = None
    value: str | None = None

    def __str__(self) -> str:
        text = self.key or "(根)"
        if self.value is not None:
            text += f" = {self.value}"
        text += f": {self.message}"
        if self.source is not None:
            text += f" (来自 {self.source})"
        return text

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "message": self.message}
        if self.source is not None:
            out["source"] = self.source.name
            if self.source.line:
                out["line"] = self.source.line
        if self.value is not None:
            out["value"] = self.value
        return out


def raise_problems(
    title: str, problems: list[Problem], error: type[ConfigError | EncryptionError] = ConfigError
) -> NoReturn:
    lines = "\n".join(f"  - {p}" for p in problems)
    raise error(
        f"{title} ({len(problems)} 个问题):\n{lines}",
        field=problems[0].key or None,
        details=[p.to_dict() for p in problems],
    )


def safe_value(value: Any, sensitive: bool) -> str:
    """A short display form of a value; secrets and ENC tokens are masked."""
    if sensitive:
        return REDACTED
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

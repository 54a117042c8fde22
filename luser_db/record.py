"""``Record``: a row without a model, a dict that also allows attribute access."""

from __future__ import annotations

from typing import Any

from ._json import RawJson

__all__ = ["Record", "record_from"]


class Record(dict[str, Any]):
    """A mapping of column name → value; ``rec["n"]``, ``rec.get("n")`` and ``rec.n`` all work."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def set(self, name: str, value: Any) -> Record:
        """Set a column and return self, for chaining (JFinal style)."""
        self[name] = value
        return self

    def to_dict(self) -> dict[str, Any]:
        return dict(self)

    def __repr__(self) -> str:
        return f"Record({dict.__repr__(self)})"


def record_from(row: Any) -> Record:
    """A Record from an asyncpg row, with jsonb values decoded."""
    rec = Record(row.items())
    for key, value in rec.items():
        if value.__class__ is RawJson:
            rec[key] = value.load()
    return rec

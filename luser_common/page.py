"""``Page[T]``: one page of results plus the totals a client needs to paginate."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
U = TypeVar("U")

__all__ = ["Page"]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """Items of page ``page_number`` (1-based) with ``page_size`` rows per page."""

    items: Sequence[T]
    page_number: int
    page_size: int
    total_row: int

    @property
    def total_page(self) -> int:
        if self.page_size <= 0:
            return 0
        return (self.total_row + self.page_size - 1) // self.page_size

    @property
    def is_first_page(self) -> bool:
        return self.page_number == 1

    @property
    def is_last_page(self) -> bool:
        return self.page_number >= self.total_page

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def map(self, fn: Callable[[T], U]) -> Page[U]:
        """The same page with every item passed through ``fn``."""
        items = [fn(item) for item in self.items]
        return Page(items, self.page_number, self.page_size, self.total_row)

    def to_dict(self, item_to_dict: Callable[[T], Any] | None = None) -> dict[str, Any]:
        convert = item_to_dict or _default_item_dict
        return {
            "items": [convert(item) for item in self.items],
            "page_number": self.page_number,
            "page_size": self.page_size,
            "total_row": self.total_row,
            "total_page": self.total_page,
        }


def _default_item_dict(item: Any) -> Any:
    to_dict = getattr(item, "to_dict", None)
    return to_dict() if callable(to_dict) else item

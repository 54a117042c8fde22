"""``categories``: the catalog's top-level grouping."""

from __future__ import annotations

from datetime import datetime

from luser_db import Field, Model


class Category(Model, table="categories"):
    id: int = Field(primary_key=True)
    name: str = ""
    slug: str = ""
    sort_order: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None

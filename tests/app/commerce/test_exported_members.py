"""``app.commerce.__all__`` is exactly its public names (httpx's test_exported_members)."""

from __future__ import annotations

import app.commerce


def test_all_lists_every_public_name() -> None:
    public = {name for name in dir(app.commerce) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(app.commerce, name)).__name__ == "module"}
    assert sorted(app.commerce.__all__) == sorted(public - modules)

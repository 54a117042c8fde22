"""The key reference is generated from the schema: the generic sections and an
application's own (here the test-local ``ExampleSettings``). That docs/config.md is
current for the service's schema is checked in tests/app/test_settings.py."""

from __future__ import annotations

from pathlib import Path

from luser_config._docs import BEGIN, END, docs_are_current, iter_keys, render_keys, update_docs


def test_every_schema_key_has_a_row_with_default_and_range() -> None:
    table = render_keys()
    keys = {k.key for k in iter_keys()}
    assert {
        "server.port",
        "database.max_connections",
        "redis.url",
        "auth.secret",
        "partner.shop.api_key",
        "database.data_sources.<name>.url",
        "features.<name>",
    } <= keys
    assert "| `server.port` | int | `8000` | ≥ 1, ≤ 65535 | TCP port |" in table
    assert "dev-insecure" not in table  # secret defaults are not printed


def test_update_rewrites_only_the_generated_block(tmp_path: Path) -> None:
    doc = tmp_path / "c.md"
    doc.write_text(f"# Title\nprose\n{BEGIN}\nstale\n{END}\ntail\n")
    assert update_docs(doc) is True
    text = doc.read_text()
    assert text.startswith("# Title\nprose\n") and text.endswith(f"{END}\ntail\n")
    assert "stale" not in text and docs_are_current(doc)
    assert update_docs(doc) is False

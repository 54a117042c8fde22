"""Line numbers for TOML keys (tomllib gives none) and parse errors."""

from __future__ import annotations

import pytest

from luser_config.sources.toml import TomlProblem, key_lines, read_toml

TEXT = '''# comment = 1
title = "x"
[server]
host = "h"   # trailing
"quoted.key" = 1
a.b.c = 2
note = """
fake = 3
[not_a_table]
"""
after = 4

[[items]]
name = "first"

[ database . "data_sources" ]
inline = { x = 1, y = [1, 2] }
lst = [
  "v=1",
  { k = 2 },
]
end = true
'''


def test_key_lines() -> None:
    lines = key_lines(TEXT)
    assert lines["title"] == 2
    assert lines["server"] == 3
    assert lines["server.host"] == 4
    assert lines["server.quoted.key"] == 5
    assert (lines["server.a"], lines["server.a.b.c"]) == (6, 6)
    assert lines["server.note"] == 7
    assert "server.fake" not in lines and "not_a_table" not in lines
    assert lines["server.after"] == 11
    assert lines["items.name"] == 14
    assert lines["database.data_sources"] == 16
    assert lines["database.data_sources.inline"] == 17
    assert lines["database.data_sources.end"] == 22


def test_read_toml_provenance_falls_back_to_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "x.toml"
    path.write_text(TEXT)
    layer = read_toml(path)
    assert layer.provenance["database.data_sources.inline.x"].line == 17  # parent's line
    assert layer.data["server"]["quoted.key"] == 1


def test_parse_error_has_line_and_column(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.toml"
    path.write_text("a = 1\nb = [1,\n")
    with pytest.raises(TomlProblem) as info:
        read_toml(path)
    assert info.value.line is not None and info.value.line >= 2
    path.write_bytes(b"a = '\xff'\n")
    with pytest.raises(TomlProblem, match="UTF-8"):
        read_toml(path)

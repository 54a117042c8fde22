"""jsonb values: encoded on the way in, decoded lazily on the way out.

Rows arrive with each jsonb value as a ``RawJson`` (the column's binary bytes,
copied in C); the JSON text is parsed only when the value is first read through
a model field, ``get()``, ``to_dict()`` or a ``Record``. Loading 10,000 rows
whose jsonb nobody reads then costs no JSON parsing at all.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["RawJson", "dumps_json", "dumps_jsonb", "load"]


class RawJson(bytes):
    """An undecoded jsonb value (version byte + JSON text)."""

    __slots__ = ()

    def load(self) -> Any:
        return json.loads(self[1:])

    def __repr__(self) -> str:
        return f"RawJson({self[1:].decode()!r})"


def load(value: Any) -> Any:
    """``value`` with a RawJson decoded; anything else unchanged."""
    return value.load() if value.__class__ is RawJson else value


# json.dumps(value, ensure_ascii=False, default=str) builds a new JSONEncoder on every
# call (only the all-defaults call reuses one); this is that encoder, built once. Its
# encode() keeps no state between calls, so sharing it gives byte-identical output.
_encode = json.JSONEncoder(ensure_ascii=False, default=str).encode


def dumps_jsonb(value: Any) -> bytes:
    if value.__class__ is RawJson:
        return bytes(value)  # already in jsonb's binary form: pass it back untouched
    return b"\x01" + _encode(value).encode()


def dumps_json(value: Any) -> bytes:
    return _encode(value).encode()

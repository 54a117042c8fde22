"""jsonb values: encoded on the way in, decoded lazily on the way out.

Rows arrive with each jsonb value as a ``RawJson`` (the column's binary bytes,
copied in C); the JSON text is parsed only when the value is first read through
a model field, ``get()``, ``to_dict()`` or a ``Record``. Loading 10,000 rows
whose jsonb nobody reads then costs no JSON parsing at all.

Decoding calls the C scanner of ``json`` directly: ``json.loads(raw[1:])`` spends
most of its time in Python before it gets there (encoding detection on bytes,
``decode`` -> ``raw_decode``, two whitespace regex matches), about five times what
the scanner itself costs on a small object. PostgreSQL writes jsonb as one JSON
value with no surrounding whitespace, which is all the bare scanner accepts.
"""

from __future__ import annotations

from _json import make_encoder, make_scanner
from json.decoder import JSONDecoder
from json.encoder import encode_basestring
from typing import Any

__all__ = ["RawJson", "dumps_json", "dumps_jsonb", "load", "scan_json"]

# json's C scanner: (text, index) -> (value, end). json.loads uses the same one, with
# the same defaults (strict strings, float/int/constant parsers, no hooks).
# A RawJson is decoded whole and scanned from index 1 (past the version byte): slicing
# the bytes first would copy them.
scan_json = make_scanner(JSONDecoder())  # type: ignore[arg-type]  # the stub wants a scanner


class RawJson(bytes):
    """An undecoded jsonb value (version byte + JSON text)."""

    __slots__ = ()

    def load(self) -> Any:
        try:
            return scan_json(self.decode(), 1)[0]
        except StopIteration:  # the bare scanner's "no JSON value here"
            raise ValueError(f"not a jsonb value: {bytes(self[:40])!r}") from None

    def __repr__(self) -> str:
        return f"RawJson({self[1:].decode()!r})"


def load(value: Any) -> Any:
    """``value`` with a RawJson decoded; anything else unchanged."""
    return value.load() if value.__class__ is RawJson else value


# json.dumps(value, ensure_ascii=False, default=str) runs three Python frames and builds a
# new C encoder per value (JSONEncoder.iterencode does, for its circular-reference
# markers). This is that C encoder built once, without markers: a value that contains
# itself then hits the recursion limit, which _encode turns back into json's ValueError.
# Same separators and escaping, so the bytes are identical to json.dumps'.
_c_encode = make_encoder(None, str, encode_basestring, None, ": ", ", ", False, False, True)


def _encode(value: Any) -> str:
    try:
        return "".join(_c_encode(value, 0))
    except RecursionError:
        raise ValueError("Circular reference detected (or JSON nested too deep)") from None


def dumps_jsonb(value: Any) -> bytes:
    if value.__class__ is RawJson:
        return bytes(value)  # already in jsonb's binary form: pass it back untouched
    return ("\x01" + _encode(value)).encode()


def dumps_json(value: Any) -> bytes:
    return _encode(value).encode()

"""Binding an Idempotency-Key to the request it was first used with.

A key names one request: the same method, path and parameters. The fingerprint
is the SHA-256 of a canonical JSON text of the three (object keys sorted, the
parameters as validated, so ``?page=1`` and the default page are one request);
the deduction row stores it, and a key presented with another fingerprint is
refused with 409 ``IDEMPOTENCY_KEY_REUSED`` (see ``app.open_api.quota``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

__all__ = ["request_fingerprint"]


def _canonical(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def request_fingerprint(method: str, path: str, params: dict[str, Any]) -> bytes:
    """32 bytes identifying (method, path, parameters); parameters may be pydantic models."""
    text = json.dumps(
        {
            "method": method.upper(),
            "path": path,
            "params": {k: _canonical(v) for k, v in params.items()},
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(text.encode()).digest()

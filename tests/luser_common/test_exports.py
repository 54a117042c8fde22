"""The public surface: ``__all__`` lists exactly the public names each package exposes."""

from __future__ import annotations

import types

import pytest

import luser_common
import luser_common.http
import luser_common.middleware
import luser_common.utils


@pytest.mark.parametrize(
    "module", [luser_common, luser_common.http, luser_common.middleware, luser_common.utils]
)
def test_exported_members(module: types.ModuleType) -> None:
    # As in httpx's tests/test_exported_members.py.
    exported = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    # Names re-exported lazily (they need the service extra's packages) count as exported.
    exported |= set(getattr(module, "_LAZY", ()))
    assert set(module.__all__) == exported
    assert sorted(module.__all__, key=str) == sorted(set(module.__all__), key=str)


def test_all_is_importable() -> None:
    for name in luser_common.__all__:
        assert getattr(luser_common, name) is not None

"""One stable error code per meaning, across luser_common and every app package."""

from __future__ import annotations

import importlib
import pkgutil

import app
from luser_common import AppError


def _all_error_classes() -> list[type[AppError]]:
    for module in pkgutil.walk_packages(app.__path__, prefix="app."):
        importlib.import_module(module.name)  # every subclass defined anywhere in app
    found: list[type[AppError]] = []
    pending: list[type[AppError]] = [AppError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_no_two_codes_are_the_same_words_reordered() -> None:
    # TOKEN_INVALID (open API) and INVALID_TOKEN (luser_common) meant the same thing.
    by_words: dict[tuple[str, ...], set[str]] = {}
    for cls in _all_error_classes():
        code = str(cls.code)
        by_words.setdefault(tuple(sorted(code.split("_"))), set()).add(code)
    clashes = [codes for codes in by_words.values() if len(codes) > 1]
    assert not clashes, clashes


def test_codes_are_upper_snake_case() -> None:
    for cls in _all_error_classes():
        assert str(cls.code).replace("_", "").isalnum() and str(cls.code).isupper(), cls

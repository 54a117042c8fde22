"""The public surface of app.open_api is exactly ``__all__``."""

from __future__ import annotations

import app.open_api as open_api
from app.open_api.feature import feature


def test_all_names_exist_and_are_sorted() -> None:
    names = list(open_api.__all__)
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in names:
        assert hasattr(open_api, name), name


def test_operations_have_unique_routes() -> None:
    keys = [(op.method, op.path) for op in feature.operations]
    assert len(keys) == len(set(keys))
    assert all(p.startswith(("/open/v1/", "/api/tokens", "/api/admin/open/")) for _, p in keys)


def test_operations_render_in_the_openapi_document() -> None:
    from app.web.openapi import build_openapi

    doc = build_openapi(list(feature.operations))
    assert "/open/v1/videos/{id}/play_url" in doc["paths"]
    assert "/api/admin/open/topups" in doc["paths"]

"""create_app composes the features once: routes from each feature's operations, and
one lifespan that starts the features in order and stops them in reverse."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app import create_app
from app.features import FeaturePackage, feature_routes, run_features
from app.lifespan import lifespan
from app.main import FEATURES
from app.settings import AppConfig


class Boom(Exception):
    pass


def _recording(name: str, events: list[str], fail: bool = False) -> FeaturePackage:
    @contextlib.asynccontextmanager
    async def jobs(services: Any) -> AsyncIterator[None]:
        if fail:
            raise Boom(name)
        events.append(f"start {name}")
        try:
            yield
        finally:
            events.append(f"stop {name}")

    return FeaturePackage(name, (), jobs=jobs)


async def test_features_start_in_order_and_stop_in_reverse() -> None:
    events: list[str] = []
    features = [_recording(n, events) for n in ("a", "b", "c")]
    async with run_features(features, services=None):  # type: ignore[arg-type]
        events.append("serving")
    assert events == ["start a", "start b", "start c", "serving", "stop c", "stop b", "stop a"]


async def test_a_feature_that_fails_to_start_stops_the_ones_started_before_it() -> None:
    events: list[str] = []
    features = [_recording("a", events), _recording("b", events, fail=True)]
    features.append(_recording("c", events))
    with pytest.raises(Boom):
        async with run_features(features, services=None):  # type: ignore[arg-type]
            events.append("serving")
    assert events == ["start a", "stop a"]


def test_the_app_serves_each_features_routes_once_under_its_one_lifespan() -> None:
    app = create_app(AppConfig())
    assert app.router.lifespan_context is lifespan  # nothing wraps or patches it
    assert app.state.features == FEATURES
    names = [f.name for f in FEATURES]
    assert len(names) == len(set(names))
    keys = [(r.path, m) for r in app.routes for m in sorted(getattr(r, "methods", None) or ())]
    assert len(keys) == len(set(keys))
    expected = [(r.path, m) for r in feature_routes(FEATURES) for m in sorted(r.methods or ())]  # type: ignore[attr-defined]
    assert set(expected) <= set(keys)
    assert ("/metrics", "GET") in keys
    no_jobs = FeaturePackage("none", ()).jobs
    for feature in FEATURES:  # a feature serves operations, or runs jobs (notify)
        runs_jobs = isinstance(feature, FeaturePackage) and feature.jobs is not no_jobs
        assert feature.operations or runs_jobs, feature.name

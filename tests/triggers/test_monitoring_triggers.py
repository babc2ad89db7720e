"""The drift and performance triggers read stored monitoring results, never recompute."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from conveyor.monitoring import MonitoringResult
from conveyor.plugins.triggers.monitoring import (
    DriftTrigger,
    MonitoringTriggerConfig,
    PerformanceTrigger,
)
from conveyor.testing.triggers import DST_MOMENTS, TriggerContract, fired_event
from conveyor.watch import Watcher

from .conftest import StepClock

T0 = datetime(2024, 3, 31, 0, 0, tzinfo=UTC)


def store_result(metadata, kind, start, *, scores, breached=(), version=1, rows=500, minutes=1):
    end = start + timedelta(minutes=minutes)
    return metadata.record_monitoring_result(
        MonitoringResult(
            id=MonitoringResult.make_id("churn", version, kind, start, end),
            model="churn",
            version=version,
            kind=kind,
            window_start=start,
            window_end=end,
            rows=rows,
            scores=scores,
            breached=breached,
            created=end,
        )
    )


class TestDriftTrigger(TriggerContract):
    @pytest.fixture
    def trigger(self, conveyor_app):
        store_result(
            conveyor_app.metadata,
            "drift",
            min(DST_MOMENTS) - timedelta(days=2),
            scores={"psi.tenure": 0.4},
            breached=["psi.tenure"],
        )
        return DriftTrigger(
            app=conveyor_app, config=MonitoringTriggerConfig(model="churn", version=1)
        )


def test_a_flapping_drift_signal_retrains_at_most_once_per_cooldown(project):
    app = project(
        '[triggers.drift]\nbackend = "drift"\nmodel = "churn"\nversion = 1\n'
        'cooldown = "20m"\npipeline = "training"\n'
    )
    clock = StepClock(T0)
    watchers = [Watcher(app=app, clock=clock), Watcher(app=app, clock=clock)]
    statuses = []
    for minute in range(60):  # drifted, not drifted, drifted, ... for an hour
        start = T0 + timedelta(minutes=minute)
        drifted = minute % 2 == 0
        store_result(
            app.metadata,
            "drift",
            start,
            scores={"psi.tenure": 0.4 if drifted else 0.01},
            breached=["psi.tenure"] if drifted else [],
        )
        clock.at = start + timedelta(minutes=1)
        statuses += [o.status for o in watchers[minute % 2].tick()]
    fired = sorted(
        (e for e in app.metadata.list_trigger_events(trigger="drift", limit=500) if e.fired),
        key=lambda e: e.details["window_end"],
    )
    at = [datetime.fromisoformat(e.details["conveyor"]["now"]) for e in fired]
    assert at == [T0 + timedelta(minutes=m) for m in (1, 21, 41)]
    assert all(b - a >= timedelta(minutes=20) for a, b in itertools.pairwise(at))
    assert statuses.count("cooldown") == 27, "every other breach inside a cooldown is refused"
    runs = sorted(app.metadata.search_runs(pipeline="training"), key=lambda r: r.started)
    assert [r.trigger_event for r in runs] == [e.id for e in fired]
    assert all(r.status == "succeeded" for r in runs)
    assert all(a.ended <= b.started for a, b in itertools.pairwise(runs)), (
        "never two overlapping runs"
    )
    assert app.metadata.get_lease("pipeline:training") is None


def test_the_newest_result_decides_and_one_result_fires_once(conveyor_app):
    metadata = conveyor_app.metadata
    trigger = DriftTrigger(
        app=conveyor_app,
        config=MonitoringTriggerConfig(
            model="churn", version=1, thresholds={"psi.tenure": 0.25}, min_rows=100
        ),
    )
    assert not trigger.evaluate(T0, None).fire
    assert "no recent monitoring result" in trigger.evaluate(T0, None).reason
    result = store_result(metadata, "skew", T0, scores={"psi.tenure": 0.3, "psi.age": 0.9})
    decision = trigger.evaluate(T0 + timedelta(minutes=5), None)
    assert decision.fire, "the config's thresholds decide, not the result's own breached"
    assert decision.key == result.id
    assert decision.details["breached"] == ["psi.tenure"]
    assert not trigger.evaluate(T0 + timedelta(minutes=6), fired_event(decision, T0)).fire
    # a newer window within thresholds calms it; too few rows are ignored
    store_result(metadata, "drift", T0 + timedelta(minutes=1), scores={"psi.tenure": 0.1})
    assert not trigger.evaluate(T0 + timedelta(minutes=7), None).fire
    store_result(metadata, "drift", T0 + timedelta(minutes=2), scores={"psi.tenure": 0.9}, rows=10)
    assert "within thresholds" in trigger.evaluate(T0 + timedelta(minutes=8), None).reason
    # results of another version are not this version's evidence
    store_result(
        metadata, "drift", T0 + timedelta(minutes=3), scores={"psi.tenure": 0.9}, version=2
    )
    assert not trigger.evaluate(T0 + timedelta(minutes=9), None).fire


def test_performance_fires_below_its_floor_and_max_age_ignores_old_windows(conveyor_app):
    trigger = PerformanceTrigger(
        app=conveyor_app,
        config=MonitoringTriggerConfig(
            model="churn", version=1, thresholds={"auc": 0.7}, max_age=timedelta(hours=1)
        ),
    )
    store_result(conveyor_app.metadata, "performance", T0, scores={"auc": 0.65})
    decision = trigger.evaluate(T0 + timedelta(minutes=30), None)
    assert decision.fire
    assert "auc=0.65" in decision.reason
    assert not trigger.evaluate(T0 + timedelta(hours=2), None).fire, "too old"
    store_result(
        conveyor_app.metadata, "performance", T0 + timedelta(minutes=1), scores={"auc": 0.8}
    )
    assert not trigger.evaluate(T0 + timedelta(minutes=30), None).fire


def test_without_a_version_in_production_nothing_fires(conveyor_app):
    trigger = DriftTrigger(app=conveyor_app, config=MonitoringTriggerConfig(model="nobody"))
    decision = trigger.evaluate(T0, None)
    assert not decision.fire
    assert "alias 'production'" in decision.reason

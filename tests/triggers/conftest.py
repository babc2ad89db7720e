"""A small real trigger for the tests (fires once per fixed interval; not shipped) and
the project the binding tests run in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from attrs import field, frozen

from conveyor import hookimpl
from conveyor.interfaces.triggers import Trigger, TriggerDecision

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@frozen(kw_only=True)
class IntervalConfig:
    """``every``: the interval (seconds or ``"10m"``)."""

    every: timedelta = field(default=timedelta(minutes=10))


class IntervalTrigger(Trigger):
    """Fires once in each ``every``-long slot counted from 2000-01-01 UTC."""

    def __init__(self, *, app: Any, config: IntervalConfig) -> None:
        self.config = config

    def evaluate(self, now: datetime, last_event: Any) -> TriggerDecision:
        slot = (now - EPOCH) // self.config.every
        start = EPOCH + slot * self.config.every
        details = {"slot": slot, "slot_start": start.isoformat()}
        if last_event is not None and last_event.details.get("slot", -1) >= slot:
            return TriggerDecision(
                fire=False, details=details, reason=f"slot {start.isoformat()} already fired"
            )
        return TriggerDecision(
            fire=True,
            details=details,
            key=f"slot-{start:%Y%m%dT%H%M%SZ}",
            reason=f"interval slot {start.isoformat()} is due",
        )


class IntervalPlugin:
    """Registers the ``interval`` trigger."""

    @hookimpl
    def register_triggers(self, register: Any) -> None:
        register("interval", factory=IntervalTrigger, config_class=IntervalConfig)


PIPELINE = """
from conveyor.pipeline import pipeline, step


@step
def hello():
    return {"hello": 1}


@pipeline
def training():
    hello()
"""


class Fired:
    """Collects ``on_trigger_fired`` events."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    @hookimpl
    def on_trigger_fired(self, event: Any) -> None:
        self.events.append(event)


@pytest.fixture
def interval_trigger() -> IntervalTrigger:
    return IntervalTrigger(app=None, config=IntervalConfig(every=timedelta(minutes=10)))


@pytest.fixture
def fired(register_plugin: Any) -> Fired:
    listener = Fired()
    register_plugin(listener, "fired-listener")
    return listener


@pytest.fixture
def project(conveyor_app: Any, register_plugin: Any, fired: Fired) -> Any:
    """``write(triggers_toml) -> app``: a project with a `training` pipeline and that config."""
    from conveyor.config import Config, add_to_path

    register_plugin(IntervalPlugin(), "interval-plugin")
    add_to_path(conveyor_app.root)  # as Conveyor.load does: the project's modules import
    (conveyor_app.root / "pipe.py").write_text(PIPELINE)

    def write(triggers: str) -> Any:
        (conveyor_app.root / "conveyor.toml").write_text(
            '[pipelines.training]\ntarget = "pipe:training"\n' + triggers
        )
        conveyor_app.config = Config.load(cwd=conveyor_app.root)
        return conveyor_app

    return write


class StepClock:
    """An injected clock for in-process watchers: time moves only when told to (waits
    pass briefly in real time, so a lease heartbeat does not spin)."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def now(self) -> datetime:
        return self.at

    def wait(self, seconds: float, stop: Any) -> bool:
        return stop.wait(min(seconds, 0.05))

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)

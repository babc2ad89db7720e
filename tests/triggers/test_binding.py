"""The core trigger binding: enabled, cooldown, single flight, recording, the event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from attrs import frozen

from conveyor import hookimpl
from conveyor.errors import ConfigError, ConveyorError
from conveyor.interfaces.triggers import TriggerDecision
from conveyor.triggers import binding, evaluate, last_fired

T0 = datetime(2024, 3, 31, 0, 55, tzinfo=UTC)
EVERY10 = '[triggers.every10]\nbackend = "interval"\nevery = "10m"\npipeline = "training"\n'


def test_a_firing_is_recorded_and_announced(project, fired):
    app = project(EVERY10)
    outcome = evaluate(app, "every10", T0)
    assert outcome.fired
    assert (outcome.status, outcome.pipeline) == ("fired", "training")
    event = app.metadata.get_trigger_event(outcome.event.id)
    assert (event.trigger, event.fired, event.key) == ("every10", True, "slot-20240331T005000Z")
    assert event.details["slot_start"] == "2024-03-31T00:50:00+00:00"
    assert event.details["conveyor"] == {
        "now": T0.isoformat(),
        "pipeline": "training",
        "backend": "interval",
        "profile": None,
    }
    assert [(e.trigger, e.event_id) for e in fired.events] == [("every10", event.id)]
    # the trigger is handed that event next time: the same slot does not fire again
    again = evaluate(app, "every10", T0 + timedelta(minutes=2))
    assert (again.status, again.event) == ("not_due", None)
    assert len(app.metadata.list_trigger_events(trigger="every10")) == 1, "not due: not stored"
    assert len(fired.events) == 1


def test_binding_keys_are_cores_and_the_rest_is_the_backends(project):
    app = project(EVERY10 + 'cooldown = "1h30m"\nsingle_flight = false\n')
    config = binding(app, "every10")
    assert (config.pipeline, config.cooldown, config.single_flight, config.enabled) == (
        "training",
        timedelta(hours=1, minutes=30),
        False,
        True,
    )
    assert app.trigger("every10").config.every == timedelta(minutes=10)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('cooldown = "soon"\n', r"\$\.triggers\.every10\.cooldown"),
        ("cooldown = -5\n", "cannot be negative"),
        ('enabled = "yes please"\n', r"\$\.triggers\.every10\.enabled"),
        ("colour = 1\n", r"extra fields found \(colour\) @ \$\.triggers\.every10"),
    ],
)
def test_invalid_bindings_are_config_errors(project, extra, message):
    app = project(EVERY10 + extra)
    with pytest.raises(ConfigError, match=message) as info:
        evaluate(app, "every10", T0)
    allowed = info.value.hint.split("allows: ")[1].split(", ")
    assert {"pipeline", "cooldown", "single_flight", "enabled"} <= set(allowed)
    if "colour" in extra:
        assert "every" in allowed, "the backend's own keys are listed too"


def test_a_disabled_binding_is_skipped_without_building_the_trigger(project):
    app = project('[triggers.off]\nbackend = "no-such-trigger"\nenabled = false\n')
    outcome = evaluate(app, "off", T0)
    assert (outcome.status, outcome.fired, outcome.decision) == ("disabled", False, None)
    assert app.metadata.list_trigger_events(trigger="off") == []


def test_cooldown_refuses_and_stores_one_refusal_per_key(project, fired):
    app = project(EVERY10 + 'cooldown = "15m"\n')
    assert evaluate(app, "every10", T0).status == "fired"
    refused = evaluate(app, "every10", T0 + timedelta(minutes=10))
    assert refused.status == "cooldown"
    assert "cooldown" in refused.reason
    assert (refused.event.fired, refused.event.key) == (False, "slot-20240331T010000Z#cooldown")
    assert evaluate(app, "every10", T0 + timedelta(minutes=11)).status == "cooldown"
    events = app.metadata.list_trigger_events(trigger="every10")
    assert [e.fired for e in events] == [False, True], "a repeated refusal is stored once"
    # the last firing is still found behind the refusal, in one lookup
    assert last_fired(app.metadata, "every10").id == events[1].id
    assert evaluate(app, "every10", T0 + timedelta(minutes=16)).status == "fired"
    assert len(fired.events) == 2


def test_single_flight_refuses_while_the_pipeline_runs(project):
    app = project(EVERY10)
    run_id = app.metadata.start_run("training")
    outcome = evaluate(app, "every10", T0)
    assert outcome.status == "running"
    assert run_id in outcome.reason
    app.metadata.finish_run(run_id, "succeeded")
    assert evaluate(app, "every10", T0).status == "fired"


def test_single_flight_off_fires_beside_a_running_run(project):
    app = project(EVERY10 + "single_flight = false\n")
    app.metadata.start_run("training")
    assert evaluate(app, "every10", T0).status == "fired"


def test_a_key_stored_already_is_a_duplicate_and_starts_nothing(project, fired):
    app = project(EVERY10)
    # another watcher raced this one and stored the slot's key first
    app.metadata.record_trigger_event("every10", "raced", key="slot-20240331T005000Z", fired=False)
    outcome = evaluate(app, "every10", T0)
    assert (outcome.status, outcome.fired) == ("duplicate", False)
    assert fired.events == []


def test_naive_times_and_unknown_names_are_refused(project):
    app = project(EVERY10)
    with pytest.raises(ConveyorError, match="naive"):
        evaluate(app, "every10", datetime(2024, 3, 31))
    with pytest.raises(ConfigError, match="no trigger named 'weekly'"):
        evaluate(app, "weekly", T0)


@frozen
class NoConfig:
    """A trigger with no keys of its own."""


class Keyless:
    """A broken trigger: fires without an idempotency key."""

    def __init__(self, *, app, config):
        pass

    def evaluate(self, now, last_event):
        return TriggerDecision(fire=True, reason="now")


class KeylessPlugin:
    @hookimpl
    def register_triggers(self, register):
        register("keyless", factory=Keyless, config_class=NoConfig)


def test_a_trigger_firing_without_a_key_is_a_plugin_error(project, register_plugin):
    register_plugin(KeylessPlugin(), "keyless-plugin")
    app = project('[triggers.bad]\nbackend = "keyless"\n')
    with pytest.raises(ConveyorError, match="without an idempotency key"):
        evaluate(app, "bad", T0)
    assert app.metadata.list_trigger_events(trigger="bad") == []

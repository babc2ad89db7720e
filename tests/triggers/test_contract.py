"""The reference interval trigger passes the trigger conformance suite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conveyor.interfaces.triggers import TriggerDecision
from conveyor.testing.triggers import TriggerContract, fired_event


class TestIntervalTrigger(TriggerContract):
    @pytest.fixture
    def trigger(self, interval_trigger):
        return interval_trigger


class ReadsTheClock:
    """A broken trigger: decides from the wall clock instead of ``now``."""

    def evaluate(self, now, last_event):
        tick = datetime.now(UTC).isoformat()
        return TriggerDecision(fire=True, reason="always", key=tick, details={"at": tick})


class FiresTwice:
    """A broken trigger: ignores its last event, so one tick fires again and again."""

    def evaluate(self, now, last_event):
        return TriggerDecision(fire=True, reason="always", key=f"{now:%Y%m%d%H}")


@pytest.mark.parametrize(
    ("broken", "test"),
    [
        (ReadsTheClock(), "test_same_inputs_give_the_same_decision"),
        (FiresTwice(), "test_a_tick_fires_once"),
    ],
)
def test_the_suite_catches_broken_triggers(broken, test):
    suite = TriggerContract()
    with pytest.raises(AssertionError):
        getattr(suite, test)(broken, (datetime(2024, 3, 31, 1, tzinfo=UTC),))


def test_the_interval_trigger_fires_once_per_slot(interval_trigger):
    now = datetime(2024, 3, 31, 0, 55, tzinfo=UTC)
    first = interval_trigger.evaluate(now, None)
    assert first.fire and first.key == "slot-20240331T005000Z"
    event = fired_event(first, now)
    assert not interval_trigger.evaluate(now + timedelta(minutes=4), event).fire
    assert interval_trigger.evaluate(now + timedelta(minutes=5), event).key == (
        "slot-20240331T010000Z"
    )

"""Conformance suite for trigger plugins.

Subclass :class:`TriggerContract` and provide the ``trigger`` fixture (a built
trigger, with whatever stored state it reads already in place).  Override
``moments`` to choose the times it is evaluated at; the default spans the
Europe/Berlin and US spring-forward and fall-back changes.  At least one moment
must make the trigger fire when it never fired before::

    class TestCronTrigger(TriggerContract):
        @pytest.fixture
        def trigger(self):
            return CronTrigger(app=None, config=CronConfig(schedule="0 2 * * *"))
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from conveyor.interfaces.metadata import TriggerEvent
from conveyor.interfaces.triggers import Trigger, TriggerDecision

#: Moments around DST changes (UTC): Europe 2024-03-31 01:00 and 2024-10-27 01:00,
#: US 2024-03-10 07:00 and 2024-11-03 06:00, each with its neighbours.
DST_MOMENTS = tuple(
    change + timedelta(minutes=offset)
    for change in (
        datetime(2024, 3, 31, 1, tzinfo=UTC),
        datetime(2024, 10, 27, 1, tzinfo=UTC),
        datetime(2024, 3, 10, 7, tzinfo=UTC),
        datetime(2024, 11, 3, 6, tzinfo=UTC),
    )
    for offset in (-61, -1, 0, 1, 59, 61, 24 * 60)
)


def fired_event(
    decision: TriggerDecision, at: datetime, *, trigger: str = "contract"
) -> TriggerEvent:
    """The event core would store for a firing ``decision`` taken at ``at``."""
    return TriggerEvent(
        id=uuid.uuid4().hex,
        trigger=trigger,
        reason=decision.reason,
        details=dict(decision.details),
        key=decision.key,
        fired=True,
        created=at,
    )


class TriggerContract:
    """The behaviour every :class:`~conveyor.interfaces.Trigger` must show."""

    @pytest.fixture
    def trigger(self) -> Trigger:
        raise NotImplementedError("a TriggerContract subclass must define `trigger`")

    @pytest.fixture
    def moments(self) -> tuple[datetime, ...]:
        return DST_MOMENTS

    def _cases(
        self, trigger: Trigger, moments: tuple[datetime, ...]
    ) -> list[tuple[datetime, TriggerEvent | None]]:
        """Each moment with no last event and with a firing one a day earlier."""
        cases: list[tuple[datetime, TriggerEvent | None]] = []
        for now in moments:
            cases.append((now, None))
            earlier = now - timedelta(days=1)
            decision = trigger.evaluate(earlier, None)
            if decision.fire:
                cases.append((now, fired_event(decision, earlier)))
        return cases

    def test_every_decision_is_a_decision_with_a_reason(
        self, trigger: Trigger, moments: tuple[datetime, ...]
    ) -> None:
        for now, last in self._cases(trigger, moments):
            decision = trigger.evaluate(now, last)
            assert isinstance(decision, TriggerDecision), f"at {now}: {decision!r}"
            assert isinstance(decision.reason, str), f"at {now}: reason {decision.reason!r}"
            assert decision.reason.strip(), f"at {now}: empty reason"
            json.dumps(decision.details)  # stored with the event: must be JSON-able

    def test_some_moment_fires(self, trigger: Trigger, moments: tuple[datetime, ...]) -> None:
        assert any(trigger.evaluate(now, None).fire for now in moments), (
            "no moment fires: give the suite a `moments` fixture with a firing moment"
        )

    def test_same_inputs_give_the_same_decision(
        self, trigger: Trigger, moments: tuple[datetime, ...]
    ) -> None:
        cases = self._cases(trigger, moments)
        first = [trigger.evaluate(now, last) for now, last in cases]
        time.sleep(0.02)  # a trigger that reads the clock would now decide differently
        assert [trigger.evaluate(now, last) for now, last in cases] == first

    def test_firing_decisions_have_keys_stable_for_the_tick(
        self, trigger: Trigger, moments: tuple[datetime, ...]
    ) -> None:
        for now, last in self._cases(trigger, moments):
            decision = trigger.evaluate(now, last)
            if decision.fire:
                assert isinstance(decision.key, str), f"at {now}: key {decision.key!r}"
                assert decision.key, f"at {now}: empty key"
                assert trigger.evaluate(now, last).key == decision.key

    def test_a_tick_fires_once(self, trigger: Trigger, moments: tuple[datetime, ...]) -> None:
        for now in moments:
            decision = trigger.evaluate(now, None)
            if not decision.fire:
                continue
            event = fired_event(decision, now)
            for later in (now, now + timedelta(seconds=1)):
                again = trigger.evaluate(later, event)
                assert not (again.fire and again.key == decision.key), (
                    f"at {later}: fired again for key {decision.key!r} it already fired for"
                )

    def test_aware_times_in_any_zone_decide_alike(
        self, trigger: Trigger, moments: tuple[datetime, ...]
    ) -> None:
        from zoneinfo import ZoneInfo

        for now in moments:
            local = now.astimezone(ZoneInfo("America/New_York"))
            assert trigger.evaluate(local, None).fire == trigger.evaluate(now, None).fire
            assert trigger.evaluate(local, None).key == trigger.evaluate(now, None).key

"""The trigger interface: decide whether a retraining should fire, and why.

A trigger is a pure decision: it is handed the time and the last event of its
binding, so a cron schedule can be tested across a DST change without touching
the clock.  Everything around the decision (enabled, cooldown, single flight,
recording, the ``on_trigger_fired`` event) is applied by core in
:func:`conveyor.triggers.evaluate`, the same way for every trigger.
"""

from __future__ import annotations

import abc
from datetime import datetime
from typing import Any

from attrs import Factory, field, frozen


@frozen(kw_only=True)
class TriggerEvent:
    """Why a retraining was (or was not) started.

    Attributes:
        id: the event's id (runs refer to it).
        trigger: the trigger's name.
        reason: why it fired, in words.
        details: the evidence (drift scores, schedule slot, data fingerprint, ...).
        key: idempotency key: one event per ``(trigger, key)``.
        fired: whether the trigger decided to start a run.
        created: when it was recorded.
        is_new: ``False`` when recording returned an event already stored under
            the same key (not stored; ignored by equality).
    """

    id: str
    trigger: str
    reason: str
    details: dict[str, Any] = Factory(dict)
    key: str | None = None
    fired: bool = True
    created: datetime
    is_new: bool = field(default=True, eq=False)


@frozen(kw_only=True)
class TriggerDecision:
    """A trigger's answer.

    Attributes:
        fire: whether a retraining should start now.
        reason: why (or why not), in words recorded with the run.
        details: JSON-able evidence (drift scores, schedule slot, new-data
            fingerprint, ...); stored with the event, so the next evaluation can
            read it back from ``last_event.details``.
        key: idempotency key: the same tick or evidence gives the same key, and
            one key starts at most one run.  Required when ``fire`` is true.
    """

    fire: bool
    reason: str
    details: dict[str, Any] = Factory(dict)
    key: str | None = None


class Trigger(abc.ABC):
    """Decides whether the pipeline should run again.

    What an implementation must guarantee (``conveyor.testing.triggers`` checks it):

    * ``evaluate`` reads no clock: the same ``now``, ``last_event`` (and the same
      stored evidence, for triggers that read monitoring results or list data)
      give an equal decision;
    * every decision has a reason; a firing one has a key, stable for the same
      tick or evidence, so a tick fires once however often it is evaluated.

    Built as ``factory(app=app, config=config)`` with ``config`` holding the
    backend's own keys of ``[triggers.<name>]``; the binding keys are core's.
    """

    @abc.abstractmethod
    def evaluate(self, now: datetime, last_event: TriggerEvent | None) -> TriggerDecision:
        """Decide at ``now`` (timezone-aware).

        ``last_event`` is the newest event of this binding that fired (its
        ``details`` are the evidence the trigger gave then, its ``key`` that
        decision's key), or ``None`` when it never fired.
        """

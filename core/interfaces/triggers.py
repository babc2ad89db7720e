"""The trigger interface: decide whether a retraining should fire, and why."""

from __future__ import annotations

import abc
from typing import Any

from attrs import Factory, frozen


@frozen(kw_only=True)
class TriggerDecision:
    """A trigger's answer.

    Attributes:
        fire: whether a retraining should start now.
        reason: why (or why not), in words recorded with the run.
        details: evidence (drift scores, schedule slot, new-data fingerprint, ...).
        key: idempotency key; two decisions with one key start one run.
    """

    fire: bool
    reason: str
    details: dict[str, Any] = Factory(dict)
    key: str | None = None


class Trigger(abc.ABC):
    """Decides whether the pipeline should run again."""

    @abc.abstractmethod
    def evaluate(self) -> TriggerDecision:
        """Look at the world (clock, data, monitoring) and decide."""

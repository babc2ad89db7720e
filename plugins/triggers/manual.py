"""The ``manual`` trigger: fires when someone asks (``conveyor trigger fire``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from attrs import frozen

from conveyor.interfaces.triggers import Trigger, TriggerDecision


@frozen(kw_only=True)
class ManualConfig:
    """The manual trigger has no keys of its own; the binding's keys apply."""


@frozen(kw_only=True)
class ManualRequest:
    """One request to run: who asked, why, and its idempotency key.

    Attributes:
        reason: why, as the requester wrote it.
        by: who asked.
        key: the request's key; the same key (a CI job retried) fires once.
    """

    reason: str
    by: str
    key: str


class ManualTrigger(Trigger):
    """Never due on its own; :meth:`request` gives a trigger that fires for one request."""

    def __init__(
        self, *, app: Any, config: ManualConfig, pending: ManualRequest | None = None
    ) -> None:
        self.app, self.config, self.pending = app, config, pending

    def request(self, reason: str, *, by: str, key: str | None = None) -> ManualTrigger:
        """This trigger with a pending request (a fresh key unless one is given)."""
        if not reason.strip():
            from conveyor.errors import ConveyorError

            raise ConveyorError(
                "a manual firing needs a reason",
                hint='conveyor trigger fire PIPELINE --reason "why"',
            )
        pending = ManualRequest(reason=reason, by=by, key=key or f"manual-{uuid.uuid4().hex}")
        return ManualTrigger(app=self.app, config=self.config, pending=pending)

    def evaluate(self, now: datetime, last_event: Any) -> TriggerDecision:
        request = self.pending
        if request is None:
            return TriggerDecision(
                fire=False, reason="manual: fires only on `conveyor trigger fire`"
            )
        if last_event is not None and last_event.key == request.key:
            return TriggerDecision(fire=False, reason=f"request {request.key} already fired")
        return TriggerDecision(
            fire=True,
            key=request.key,
            details={"by": request.by, "requested": request.reason},
            reason=f"requested by {request.by}: {request.reason}",
        )

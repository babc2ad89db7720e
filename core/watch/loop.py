"""``conveyor watch``: evaluate every trigger on an interval and start what fired.

Each tick, per trigger: record ``interrupted`` any run a lapsed lease covered,
start a firing whose run never started, then evaluate until nothing more is due
(a catch-up policy may fire several missed ticks, one per evaluation), starting
each firing's run in turn.  What it decided is logged with its reason and stored
as the trigger's watcher state, so ``conveyor triggers status`` shows it and a
restart carries on from it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from attrs import define, field

from conveyor.triggers import (
    DEFAULT_LEASE_TTL,
    TriggerOutcome,
    binding,
    evaluate,
    recover,
    trigger_names,
)
from conveyor.watch.clock import Clock, SystemClock
from conveyor.watch.launch import Launch, launch, pending

log = logging.getLogger("conveyor.watch")

#: Most firings one trigger may catch up in one tick; the rest wait for the next
#: (as they do once a burst outlasts one interval, so other triggers get their turn).
MAX_BURST = 1000


def new_holder() -> str:
    """A watcher's unique name: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@define(kw_only=True)
class Watcher:
    """Evaluates the configured triggers of ``app`` and starts the runs they fire.

    Attributes:
        app: the project's app.
        clock: where time comes from (injected in tests).
        interval: time between two ticks.
        lease_ttl: how long a pipeline's lease lasts unless its run renews it.
        names: the triggers to watch (default every configured one).
        holder: this watcher's unique name, stored on its leases.
        stop: set to end the loop after the current run (SIGTERM sets it).
        until: the watcher's time stops there: later evaluations happen at ``until``
            (set by :meth:`run`).
    """

    app: Any
    clock: Clock = field(factory=SystemClock)
    interval: timedelta = timedelta(minutes=1)
    lease_ttl: timedelta = DEFAULT_LEASE_TTL
    names: Sequence[str] = ()
    holder: str = field(factory=new_holder)
    stop: threading.Event = field(factory=threading.Event)
    launches: list[Launch] = field(factory=list)
    until: datetime | None = None

    def now(self) -> datetime:
        """The clock's time, held at ``until``."""
        now = self.clock.now()
        return now if self.until is None else min(now, self.until)

    def triggers(self) -> list[str]:
        return list(self.names) or trigger_names(self.app)

    def tick(self) -> list[TriggerOutcome]:
        """Evaluate every trigger once (catching up) and start what fired."""
        outcomes = []
        for name in self.triggers():
            if self.stop.is_set():
                break
            outcomes.extend(self._tick_one(name))
        return outcomes

    def _tick_one(self, name: str) -> list[TriggerOutcome]:
        from conveyor.runs.resolve import resolve_pipeline

        now = began = self.now()  # each evaluation below reads the clock again
        config = binding(self.app, name)
        outcomes: list[TriggerOutcome] = []
        if config.enabled:
            pipeline = resolve_pipeline(self.app.config, config.pipeline)[0]
            for run_id in recover(self.app, pipeline, now):
                self._log(name, "interrupted", f"run {run_id}: its watcher stopped renewing")
            resumed = pending(
                self.app, name, pipeline, now, holder=self.holder, lease_ttl=self.lease_ttl
            )
            if resumed is not None:
                self._log(name, "resumed", resumed.reason)
                self._start(resumed)
        for _ in range(MAX_BURST):
            now = self.now()
            outcome = evaluate(self.app, name, now, holder=self.holder, lease_ttl=self.lease_ttl)
            outcomes.append(outcome)
            self._log(name, outcome.status, outcome.reason)
            if not outcome.fired:
                break
            self._start(outcome)
            if self.stop.is_set() or (
                self.now() != self.until and self.now() - began >= self.interval
            ):
                break
        self.app.metadata.put_watch_state(
            name,
            {
                "last_tick": now.isoformat(),
                "status": outcomes[-1].status,
                "reason": outcomes[-1].reason,
                "holder": self.holder,
                "fired": sum(o.fired for o in outcomes),
                "event": outcomes[-1].event.id if outcomes[-1].event else None,
            },
        )
        return outcomes

    def _start(self, outcome: TriggerOutcome) -> None:
        started = launch(
            self.app, outcome, holder=self.holder, clock=self.clock, lease_ttl=self.lease_ttl
        )
        self.launches.append(started)
        self._log(
            outcome.trigger,
            f"run {started.status}",
            f"run {started.run_id} for event {started.event_id}: {started.reason}",
        )

    def _log(self, name: str, status: str, reason: str) -> None:
        level = logging.DEBUG if status == "not_due" else logging.INFO
        log.log(
            level,
            "%s trigger %s: %s: %s",
            self.now().isoformat(timespec="seconds"),
            name,
            status,
            reason,
        )

    def run(self, *, once: bool = False, until: datetime | None = None) -> None:
        """Tick until stopped (SIGTERM: the current run finishes first), once, or until a
        tick started at ``until`` or later."""
        previous = _on_sigterm(self.stop)
        self.until = until
        try:
            while not self.stop.is_set():
                began = self.now()
                self.tick()
                if once or (until is not None and began >= until):
                    break
                pause = self.interval.total_seconds()
                if until is not None:
                    pause = min(pause, max((until - self.clock.now()).total_seconds(), 0.0))
                if self.clock.wait(pause, self.stop):
                    break
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        log.info("watcher %s stopped", self.holder)


def _on_sigterm(stop: threading.Event) -> Any:
    """SIGTERM sets ``stop`` (a second one interrupts); ``None`` off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handle(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt("second SIGTERM")
        log.info("SIGTERM: stopping after the current run")
        stop.set()

    return signal.signal(signal.SIGTERM, handle)

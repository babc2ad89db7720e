"""The watcher's clock: the system's, or an injected accelerated one for tests.

``CONVEYOR_WATCH_CLOCK`` is a test hook, read only by ``conveyor watch``: its
value ``START`` or ``START@ANCHORxSPEED`` makes the watcher's time
``START + (wall time - ANCHOR) * SPEED`` (``ANCHOR`` in Unix seconds, default the
moment the process started; ``SPEED`` default 1).  Processes given the same value
share one simulated time, so a test drives hours of schedule in seconds.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from attrs import frozen

from conveyor.errors import ConfigError

CLOCK_ENV = "CONVEYOR_WATCH_CLOCK"


class Clock(Protocol):
    """What the watcher reads time from and waits on."""

    def now(self) -> datetime:
        """The current time (timezone-aware)."""

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Wait ``seconds`` of this clock's time; ``True`` when ``stop`` was set."""


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(max(seconds, 0.0))


@frozen
class ScaledClock:
    """``start + (time.time() - anchor) * speed``: simulated time that runs ``speed`` x."""

    start: datetime
    anchor: float
    speed: float = 1.0

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.anchor) * self.speed)

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(max(seconds, 0.0) / self.speed)


def clock_from_env(value: str | None) -> Clock:
    """The clock ``CONVEYOR_WATCH_CLOCK`` asks for (the system clock when unset)."""
    if not value:
        return SystemClock()
    start_text, _, rest = value.partition("@")
    anchor_text, _, speed_text = rest.partition("x")
    try:
        start = datetime.fromisoformat(start_text)
        anchor = float(anchor_text) if anchor_text else time.time()
        speed = float(speed_text) if speed_text else 1.0
    except ValueError:
        start = None
    if start is None or start.tzinfo is None or speed <= 0:
        raise ConfigError(
            f"{CLOCK_ENV}={value!r} is not START[@ANCHORxSPEED]",
            hint="e.g. 2024-01-01T00:00:00+00:00@1700000000x600, or unset it",
        )
    return ScaledClock(start=start, anchor=anchor, speed=speed)

"""``conveyor watch``: triggers evaluated on an interval, runs started under leases.

:class:`Watcher` is the loop; :func:`launch` starts one firing's run; the clock
is injectable (:mod:`conveyor.watch.clock`).  See docs/triggers.md.
"""

from conveyor.watch.clock import CLOCK_ENV, Clock, ScaledClock, SystemClock, clock_from_env
from conveyor.watch.launch import Launch, launch, pending
from conveyor.watch.loop import MAX_BURST, Watcher, new_holder

__all__ = [
    "CLOCK_ENV",
    "MAX_BURST",
    "Clock",
    "Launch",
    "ScaledClock",
    "SystemClock",
    "Watcher",
    "clock_from_env",
    "launch",
    "new_holder",
    "pending",
]

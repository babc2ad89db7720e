"""Values of the metadata store's coordination records: leases and watcher state.

``conveyor watch`` holds a lease per pipeline while it runs one (so two watchers
never run it at once, and a dead watcher's claim lapses) and persists, per
trigger, what it last evaluated (so a restart neither misses nor repeats a tick).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from attrs import Factory, frozen


@frozen(kw_only=True)
class Lease:
    """A time-limited claim on a name (``pipeline:training``): one holder at a time.

    A holder keeps it by renewing it before ``expires``; a holder that dies stops
    renewing, and once ``expires`` has passed anyone may take it over.

    Attributes:
        name: what is claimed.
        holder: who holds it (a process's unique id).
        key: what the holder does under it (core: the trigger event it runs).
        acquired: when this holder took it.
        expires: when it lapses unless renewed.
    """

    name: str
    holder: str
    key: str | None = None
    acquired: datetime
    expires: datetime

    def expired(self, now: datetime) -> bool:
        """Whether the lease has lapsed at ``now``."""
        return now >= self.expires


@frozen(kw_only=True)
class WatchState:
    """What a watcher persisted about one trigger (``conveyor watch`` restarts from it).

    Attributes:
        name: the trigger's name.
        state: JSON-able state (last tick evaluated, last outcome, ...).
        updated: when it was last written.
    """

    name: str
    state: dict[str, Any] = Factory(dict)
    updated: datetime


__all__ = ["Lease", "WatchState"]

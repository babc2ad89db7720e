"""Cron ticks as instants: a cron expression read on a zone's wall clock.

The rule at DST changes (documented in docs/triggers.md):

* a wall time that does not exist (spring forward: 02:30 in Europe/Berlin on the
  last Sunday of March) fires once, at the first instant after the gap (03:00
  CEST); several ticks inside one gap fire once, together;
* a wall time that happens twice (fall back: 01:30 in America/New_York on the
  first Sunday of November) fires once, at its first occurrence.

A tick is the UTC instant it fires at, so every tick has one stable key.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

#: Wider than any DST shift, so iterating wall times from here cannot miss a tick.
_MARGIN = timedelta(hours=3)


def wall(instant: datetime, zone: ZoneInfo) -> datetime:
    """The naive wall-clock time of ``instant`` in ``zone``."""
    return instant.astimezone(zone).replace(tzinfo=None)


def instant(wall_time: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant a wall time fires at, by the DST rule above."""
    first = wall_time.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if wall(first, zone) == wall_time:
        return first  # exists; fold=0 is the first of two occurrences
    # in a gap: the transition lies between the offsets after (fold=1) and before
    low = wall_time.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = first
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if wall(middle, zone) > wall_time:
            high = middle
        else:
            low = middle
    whole = high.replace(microsecond=0)  # transitions fall on whole seconds
    return whole if wall(whole, zone) > wall_time else high


class Schedule:
    """A cron expression on one zone's wall clock.

    Attributes:
        expression: the cron expression (5 fields, or 6 with seconds).
        zone: the time zone its wall times are read in.
    """

    def __init__(self, expression: str, zone: ZoneInfo) -> None:
        self.expression = expression
        self.zone = zone

    def _walls(self, start: datetime, *, backward: bool) -> Iterator[datetime]:
        from croniter import croniter

        it = croniter(self.expression, start)
        step = it.get_prev if backward else it.get_next
        while True:
            yield step(datetime)

    def after(self, moment: datetime) -> Iterator[datetime]:
        """Ticks strictly after ``moment``, ascending, each once."""
        last: datetime | None = None
        for wall_time in self._walls(wall(moment, self.zone) - _MARGIN, backward=False):
            tick = instant(wall_time, self.zone)
            if tick > moment and tick != last:
                last = tick
                yield tick

    def until(self, moment: datetime) -> Iterator[datetime]:
        """Ticks at or before ``moment``, descending, each once."""
        last: datetime | None = None
        for wall_time in self._walls(wall(moment, self.zone) + _MARGIN, backward=True):
            tick = instant(wall_time, self.zone)
            if tick <= moment and tick != last:
                last = tick
                yield tick

    def latest(self, moment: datetime) -> datetime:
        """The newest tick at or before ``moment``."""
        return next(self.until(moment))

    def next(self, moment: datetime) -> datetime:
        """The first tick after ``moment``."""
        return next(self.after(moment))

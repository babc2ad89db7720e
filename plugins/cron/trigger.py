"""The ``cron`` trigger: fire once per tick of a cron schedule in a time zone."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from attrs import field, frozen

from conveyor.interfaces.triggers import Trigger, TriggerDecision
from conveyor.plugins.cron.schedule import Schedule

_BOUNDED = re.compile(r"bounded\((\d+)\)")


def _valid_schedule(_instance: Any, _attribute: Any, value: str) -> None:
    from croniter import croniter

    if not croniter.is_valid(value):
        raise ValueError(f'{value!r} is not a cron expression (e.g. "0 2 * * *")')


def _valid_zone(_instance: Any, _attribute: Any, value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'{value!r} is not an IANA time zone (e.g. "Europe/Berlin")') from None


def _valid_catch_up(_instance: Any, _attribute: Any, value: str) -> None:
    match = _BOUNDED.fullmatch(value)
    if value not in ("latest", "all") and not (match and int(match.group(1)) >= 1):
        raise ValueError(f'catch_up {value!r}: use "latest", "all" or "bounded(N)", N >= 1')


@frozen(kw_only=True)
class CronConfig:
    """The cron trigger's keys of ``[triggers.<name>]``.

    Attributes:
        schedule: a cron expression, read on ``timezone``'s wall clock.
        timezone: an IANA zone name (default UTC).
        catch_up: after downtime, fire only the newest missed tick (``latest``),
            every missed tick in order (``all``) or the newest N (``bounded(N)``).
    """

    schedule: str = field(validator=_valid_schedule)
    timezone: str = field(default="UTC", validator=_valid_zone)
    catch_up: str = field(default="latest", validator=_valid_catch_up)


class CronTrigger(Trigger):
    """Fires once per tick of its schedule; the tick's UTC instant is the key.

    A tick is due once ``now`` reaches it.  The first evaluation of a schedule
    that never fired fires its newest tick; afterwards ``catch_up`` decides which
    missed tick fires next (one per evaluation: ``conveyor watch`` evaluates again
    straight after a firing until nothing is due).
    """

    def __init__(self, *, app: Any, config: CronConfig) -> None:
        self.config = config
        self.zone = ZoneInfo(config.timezone)
        self.schedule = Schedule(config.schedule, self.zone)

    def _label(self, tick: datetime) -> str:
        return f"{tick.astimezone(self.zone):%Y-%m-%d %H:%M %Z}"

    def evaluate(self, now: datetime, last_event: Any) -> TriggerDecision:
        cfg = self.config
        what = f"schedule {cfg.schedule!r} ({cfg.timezone})"
        latest = self.schedule.latest(now)
        stamp = last_event.details.get("tick") if last_event is not None else None
        last = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
        if last is not None and latest <= last:
            upcoming = self.schedule.next(max(now, last))
            return TriggerDecision(
                fire=False,
                details={"next": upcoming.isoformat()},
                reason=f"{what}: next tick {self._label(upcoming)}",
            )
        tick, note = latest, ""
        if last is not None and cfg.catch_up == "all":
            tick = self.schedule.next(last)
        elif last is not None and cfg.catch_up != "latest":
            bounded = _BOUNDED.fullmatch(cfg.catch_up)
            assert bounded is not None  # the config accepts all, latest or bounded(N)
            bound = int(bounded.group(1))
            newest: list[datetime] = []
            for candidate in self.schedule.until(now):
                if candidate <= last or len(newest) == bound:
                    break
                newest.append(candidate)
            tick = newest[-1]
        if tick != latest:
            note = f" (catching up, policy {cfg.catch_up}; newest tick {self._label(latest)})"
        return TriggerDecision(
            fire=True,
            key=f"cron-{tick.astimezone(ZoneInfo('UTC')):%Y%m%dT%H%M%SZ}",
            details={
                "tick": tick.isoformat(),
                "local": self._label(tick),
                "schedule": cfg.schedule,
                "timezone": cfg.timezone,
                "catch_up": cfg.catch_up,
            },
            reason=f"{what}: tick {self._label(tick)} is due{note}",
        )

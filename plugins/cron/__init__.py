"""The bundled ``cron`` trigger: time-zone aware schedules with a documented DST rule.

Registered through ``register_triggers`` like a third-party plugin; ``croniter``
reads the expression, :mod:`zoneinfo` the zone.  See docs/triggers.md.
"""

from __future__ import annotations

from typing import Any

from conveyor import hookimpl


@hookimpl
def register_triggers(register: Any) -> None:
    """The ``cron`` trigger backend."""
    from conveyor.plugins.cron.trigger import CronConfig, CronTrigger

    register(
        "cron",
        factory=CronTrigger,
        config_class=CronConfig,
        description="fires once per tick of a cron schedule in a time zone",
    )

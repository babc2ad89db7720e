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
    register(
        "cron",
        factory="conveyor.plugins.cron.trigger:CronTrigger",
        config_class="conveyor.plugins.cron.trigger:CronConfig",
        description="fires once per tick of a cron schedule in a time zone",
    )

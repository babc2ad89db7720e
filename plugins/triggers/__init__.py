"""The bundled retraining triggers: ``manual``, ``new_data``, ``drift``, ``performance``.

Registered through ``register_triggers`` exactly as a third-party plugin would;
``cron`` is its own plugin (:mod:`conveyor.plugins.cron`).  See docs/triggers.md.
"""

from __future__ import annotations

from typing import Any

from conveyor import hookimpl


@hookimpl
def register_triggers(register: Any) -> None:
    """The ``manual``, ``new_data``, ``drift`` and ``performance`` trigger backends."""
    register(
        "manual",
        factory="conveyor.plugins.triggers.manual:ManualTrigger",
        config_class="conveyor.plugins.triggers.manual:ManualConfig",
        description="fires on `conveyor trigger fire`",
    )
    register(
        "new_data",
        factory="conveyor.plugins.triggers.new_data:NewDataTrigger",
        config_class="conveyor.plugins.triggers.new_data:NewDataConfig",
        description="fires when settled new files under a URI add enough rows",
    )
    register(
        "drift",
        factory="conveyor.plugins.triggers.monitoring:DriftTrigger",
        config_class="conveyor.plugins.triggers.monitoring:MonitoringTriggerConfig",
        description="fires on a stored drift/skew result over its thresholds",
    )
    register(
        "performance",
        factory="conveyor.plugins.triggers.monitoring:PerformanceTrigger",
        config_class="conveyor.plugins.triggers.monitoring:MonitoringTriggerConfig",
        description="fires on a stored performance result below its floors",
    )

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
    from conveyor.plugins.triggers.manual import ManualConfig
    from conveyor.plugins.triggers.monitoring import MonitoringTriggerConfig
    from conveyor.plugins.triggers.new_data import NewDataConfig

    register(
        "manual",
        factory="conveyor.plugins.triggers.manual:ManualTrigger",
        config_class=ManualConfig,
        description="fires on `conveyor trigger fire`",
    )
    register(
        "new_data",
        factory="conveyor.plugins.triggers.new_data:NewDataTrigger",
        config_class=NewDataConfig,
        description="fires when settled new files under a URI add enough rows",
    )
    register(
        "drift",
        factory="conveyor.plugins.triggers.monitoring:DriftTrigger",
        config_class=MonitoringTriggerConfig,
        description="fires on a stored drift/skew result over its thresholds",
    )
    register(
        "performance",
        factory="conveyor.plugins.triggers.monitoring:PerformanceTrigger",
        config_class=MonitoringTriggerConfig,
        description="fires on a stored performance result below its floors",
    )

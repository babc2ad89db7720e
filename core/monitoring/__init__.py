"""Monitoring: drift, training-serving skew and model performance from the prediction log.

The decision (``docs/architecture.md``, "Monitoring"): core computes, polars-native,
from the prediction log and the training profile stored with each model version;
each computation is stored as a :class:`MonitoringResult`, which the drift and
performance triggers read.  Modules by responsibility:

* :mod:`.stats` - numpy kernels (KS, PSI, chi-square, Jensen-Shannon, AUC, ...);
* :mod:`.reference`, :mod:`.drift` - drift and skew with their decision;
* :mod:`.performance`, :mod:`.estimate` - realized and estimated (CBPE) performance;
* :mod:`.report` - the self-contained HTML report;
* :mod:`.service` - the app-level runs: read the log, compute, store, emit events.
"""

from __future__ import annotations

from typing import Any

from conveyor.monitoring.result import KINDS, MonitoringResult

_LAZY = {
    "DriftReport": "drift",
    "DriftThresholds": "drift",
    "FeatureDrift": "drift",
    "compare": "drift",
    "PerformanceReport": "performance",
    "PerformanceThresholds": "performance",
    "WindowMetric": "performance",
    "performance_windows": "performance",
    "Calibration": "estimate",
    "fit_calibration": "estimate",
    "estimate_binary": "estimate",
    "render_html": "report",
    "monitor_drift": "service",
    "monitor_performance": "service",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor.monitoring' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"conveyor.monitoring.{module}"), name)


__all__ = ["KINDS", "MonitoringResult", *_LAZY]

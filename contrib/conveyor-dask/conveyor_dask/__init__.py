"""Conveyor on Dask: the ``dask`` orchestrator, distributed training and retrieval.

Kept light: it declares the backend; Dask is imported when the orchestrator is
first used.  ``conveyor_dask.training`` has the pipeline steps that train with
``lightgbm.dask`` and build the point-in-time training set on the workers.
"""

from __future__ import annotations

from typing import Any

from conveyor import hookimpl
from conveyor_dask.config import DaskOrchestratorConfig

__all__ = ["DaskOrchestratorConfig"]


@hookimpl
def register_orchestrators(register: Any) -> None:
    """The Dask orchestrator: steps run as tasks on a Dask cluster."""
    register(
        "dask",
        factory="conveyor_dask.orchestrator:DaskOrchestrator",
        config_class="conveyor_dask.config:DaskOrchestratorConfig",
        extras=("conveyor-dask", "dask[distributed]"),
        description="Steps as tasks on a Dask cluster (scheduler = tcp://..., or a local one)",
    )

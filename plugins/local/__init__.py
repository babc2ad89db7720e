"""Bundled plugin ``local``: the local-filesystem backends.

Kept light: it only declares backends; their implementations (and heavy
imports such as fsspec and pyarrow) load when a backend is first used.
"""

from __future__ import annotations

from typing import Any

from conveyor import hookimpl


@hookimpl
def register_artifact_stores(register: Any) -> None:
    """The local artifact store (``file://`` URLs and plain paths)."""
    register(
        "local",
        factory="conveyor.plugins.local.store:LocalArtifactStore.from_config",
        config_class="conveyor.plugins.local.config:LocalArtifactStoreConfig",
        schemes=("file",),
        description="Local filesystem (atomic rename, SHA-256 verified)",
    )


@hookimpl
def register_orchestrators(register: Any) -> None:
    """The local orchestrator: executes steps in this process."""
    register(
        "local",
        factory="conveyor.plugins.local.orchestrator:LocalOrchestrator",
        config_class="conveyor.plugins.local.config:LocalOrchestratorConfig",
        description="In-process: steps inline or in parallel threads",
    )

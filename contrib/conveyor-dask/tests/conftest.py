"""A module-scoped Dask cluster: 2 worker processes on 127.0.0.1 (bounded timeouts)."""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.config import Config, add_to_path


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """The address of a LocalCluster of 2 single-threaded worker processes."""
    from conveyor_dask.cluster import start_local_cluster
    from conveyor_dask.config import DaskOrchestratorConfig

    cluster = start_local_cluster(DaskOrchestratorConfig(workers=2, memory_limit="3GiB"))
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close(timeout=30)


def _configure(app: Any, text: str) -> Any:
    (app.root / "conveyor.toml").write_text(text)
    app.close()
    app.config = Config.load(cwd=app.root)
    return app


@pytest.fixture
def configure() -> Any:
    """``configure(app, toml_text)``: write ``conveyor.toml`` and reload the app's config."""
    return _configure


@pytest.fixture
def dask_toml(scheduler: str) -> str:
    """``[orchestrator]`` selecting the module's cluster."""
    return f'[orchestrator]\nbackend = "dask"\nscheduler = "{scheduler}"\nconnect_timeout_s = 20\n'


@pytest.fixture
def dask_plugin(register_plugin: Any) -> Any:
    import conveyor_dask

    register_plugin(conveyor_dask, "dask")
    return conveyor_dask


@pytest.fixture
def dask_app(conveyor_app: Any, dask_plugin: Any, dask_toml: str) -> Any:
    """An app rooted in ``tmp_path`` whose orchestrator is the module's cluster."""
    return _configure(conveyor_app, dask_toml)


@pytest.fixture
def project_steps(dask_app: Any) -> Any:
    """``project_steps.py`` copied into the project root and imported from there.

    Workers import steps by module name from the project root, as they would a real
    project's; the test's own module is not importable outside pytest.
    """
    shutil.copy(Path(__file__).with_name("project_steps.py"), dask_app.root / "dask_steps.py")
    add_to_path(dask_app.root)  # undone at teardown by the conveyor_app fixture
    return importlib.import_module("dask_steps")

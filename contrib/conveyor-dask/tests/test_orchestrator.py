"""The Dask orchestrator holds the executor contract on a 2-worker cluster."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from conveyor.errors import ConfigError, ConveyorError
from conveyor.runs import run_pipeline
from conveyor.testing.orchestrator import OrchestratorContract


class TestDaskOrchestrator(OrchestratorContract):
    @pytest.fixture
    def app(self, dask_app):
        assert type(dask_app.orchestrator).__name__ == "DaskOrchestrator"
        assert dask_app.orchestrator.max_parallel == 2
        return dask_app


# -- a worker killed mid-step ------------------------------------------------------------


def test_a_worker_killed_mid_step_is_retried_by_core_and_recorded(dask_app, project_steps):
    from concurrent.futures import ThreadPoolExecutor

    marker = dask_app.root / "worker.pid"
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(run_pipeline, dask_app, project_steps.killed_worker)
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the step never started"
        time.sleep(0.2)  # the pid is written: the step is now sleeping in the worker
        victim = int(marker.read_text())
        assert victim != os.getpid()
        os.kill(victim, signal.SIGKILL)
        result = running.result(timeout=60)
    assert result.ok, result.error
    outcome = result.steps["dies_once"]
    assert outcome.attempts == 2
    assert result.output("dies_once")["pid"] != victim
    run = dask_app.metadata.get_run(result.run_id)
    assert run.status == "succeeded"
    (execution,) = [s for s in run.steps if s.name == "dies_once"]
    assert execution.status == "succeeded"


# -- configuration -----------------------------------------------------------------------


def test_a_scheduler_that_is_not_an_address_is_a_config_error(conveyor_app, dask_plugin, configure):
    app = configure(
        conveyor_app, '[orchestrator]\nbackend = "dask"\nscheduler = "localhost:8786"\n'
    )
    with pytest.raises(ConfigError, match="tcp://host:8786"):
        _ = app.orchestrator


def test_an_unreachable_scheduler_names_the_address_and_the_fix(
    conveyor_app, dask_plugin, configure
):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    app = configure(
        conveyor_app,
        f'[orchestrator]\nbackend = "dask"\nscheduler = "{address}"\nconnect_timeout_s = 1\n',
    )
    with pytest.raises(ConveyorError) as caught:
        _ = app.orchestrator
    assert address in caught.value.message
    assert "dask scheduler" in caught.value.hint

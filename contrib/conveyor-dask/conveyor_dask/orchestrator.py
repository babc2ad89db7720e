"""The Dask orchestrator: every step's work is a task on a Dask worker.

Core (:mod:`conveyor.runs`) decides what runs, caches, retries and records; this
executor only sends each step's JSON form (``work.to_json()``) to a worker, which
runs it with :func:`conveyor.runs.run_task`: the worker reads the inputs from the
artifact store and stores the outputs there, and only JSON comes back.  A step
with a timeout runs in a child process of the worker (``python -m
conveyor.runs.worker``), killed when the timeout passes; a worker that dies
mid-step fails the step's future (Dask does not rerun it), and core retries it
per the step's policy.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from concurrent.futures import Future
from typing import Any

from conveyor.interfaces.orchestrator import Orchestrator
from conveyor.runs import StepResult, run_task
from conveyor_dask.cluster import connect, start_local_cluster
from conveyor_dask.config import DaskOrchestratorConfig


def run_killable(task_json: str, root: str, timeout_s: float) -> str:
    """Run one step's JSON form in a child process, killed after ``timeout_s``."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "conveyor.runs.worker"],
            input=task_json + "\n",
            capture_output=True,
            text=True,
            cwd=root,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"the step was stopped after {timeout_s:g} s") from None
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"the step's process failed: {done.stderr.strip()[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


class DaskOrchestrator(Orchestrator):
    """Executes steps as Dask tasks; see the module docstring."""

    in_process = False

    def __init__(self, *, app: Any, config: DaskOrchestratorConfig) -> None:
        self.config = config
        self.root = str(app.root)
        self.cluster = None if config.scheduler else start_local_cluster(config)
        try:
            self.client = connect(config.scheduler or self.cluster, config.connect_timeout_s)
        except BaseException:
            if self.cluster is not None:
                self.cluster.close()
            raise
        self.max_parallel = max(1, sum(self.client.nthreads().values()))

    @property
    def scheduler_address(self) -> str:
        return self.client.scheduler.address

    def submit(self, work: Any) -> Future[StepResult]:
        future: Future[StepResult] = Future()
        key = f"conveyor-{work.node}-{work.attempt}-{uuid.uuid4().hex[:12]}"
        if work.timeout_s is None:
            task = self.client.submit(run_task, work.to_json(), key=key, pure=False)
        else:
            task = self.client.submit(
                run_killable, work.to_json(), self.root, work.timeout_s, key=key, pure=False
            )

        def settle(done: Any) -> None:
            # the wrapper stays pending until the task ends, so core's cancel() at a
            # timeout succeeds: the child process is killed by then
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(StepResult.from_json(done.result()))
            except BaseException as exc:  # a step failure, a killed worker: core decides
                future.set_exception(exc)

        task.add_done_callback(settle)
        future.add_done_callback(lambda f: task.cancel() if f.cancelled() else None)
        return future

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

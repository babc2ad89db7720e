"""The local orchestrator: executes steps' work in this process.

Core (:mod:`conveyor.runs`) decides what runs; this executor only runs it.  With
``max_workers = 1`` a step runs inline in the calling thread; with more, or when
the step has a timeout, it runs in a daemon thread of its own, so a step core
stopped waiting for never keeps the process from exiting.  A thread cannot be
killed: core records such a step ``timed_out`` and says it may still be running.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

from conveyor.interfaces.orchestrator import Orchestrator
from conveyor.plugins.local.config import LocalOrchestratorConfig


def _run_into(work: Any, future: Future[Any]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(work())
    except Exception as exc:  # handed to core through the future
        future.set_exception(exc)


class LocalOrchestrator(Orchestrator):
    """Runs work inline or in threads; see the module docstring."""

    in_process = True

    def __init__(self, *, app: Any, config: LocalOrchestratorConfig) -> None:
        self.config = config
        self.max_parallel = config.max_workers

    def submit(self, work: Any) -> Future[Any]:
        future: Future[Any] = Future()
        if self.max_parallel == 1 and work.timeout_s is None:
            _run_into(work, future)
        else:
            threading.Thread(
                target=_run_into, args=(work, future), daemon=True, name=f"conveyor-{work.node}"
            ).start()
        return future

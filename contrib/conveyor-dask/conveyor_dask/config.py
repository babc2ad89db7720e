"""``[orchestrator]`` settings of the ``dask`` backend (light: attrs only)."""

from __future__ import annotations

from typing import Any

from attrs import field, frozen

SCHEMES = ("tcp://", "tls://", "ucx://", "inproc://", "ws://", "wss://")


@frozen(kw_only=True)
class DaskOrchestratorConfig:
    """``[orchestrator]`` for ``backend = "dask"``.

    Attributes:
        scheduler: the address of a running Dask scheduler (``tcp://host:8786``);
            empty: start a ``LocalCluster`` of worker processes on 127.0.0.1.
        workers: worker processes of that local cluster.
        threads_per_worker: threads of each local worker (steps one worker runs at once).
        memory_limit: each local worker's memory limit (Dask's syntax: ``"4GiB"``,
            ``"auto"`` = the machine's memory shared out).
        connect_timeout_s: how long to wait for the scheduler and a first worker.
    """

    scheduler: str = field(default="")
    workers: int = field(default=2)
    threads_per_worker: int = field(default=1)
    memory_limit: str = field(default="auto")
    connect_timeout_s: float = field(default=30.0)

    @scheduler.validator
    def _check_scheduler(self, _attribute: Any, value: str) -> None:
        if value and not value.startswith(SCHEMES):
            raise ValueError(f"scheduler must be an address such as tcp://host:8786, not {value!r}")

    @workers.validator
    def _check_workers(self, _attribute: Any, value: int) -> None:
        if value < 1:
            raise ValueError("workers must be 1 or more")

    @threads_per_worker.validator
    def _check_threads(self, _attribute: Any, value: int) -> None:
        if value < 1:
            raise ValueError("threads_per_worker must be 1 or more")

    @connect_timeout_s.validator
    def _check_timeout(self, _attribute: Any, value: float) -> None:
        if value <= 0:
            raise ValueError("connect_timeout_s must be positive")

"""Reaching a Dask cluster: a local one started here, the configured one, or ours.

Steps that use the cluster themselves (distributed training and retrieval) call
:func:`cluster_client`: run by the ``dask`` orchestrator they are a task on a
worker and get a client of the same cluster (the task leaves its worker thread
while it waits, so the work it submits can use that worker too); run elsewhere
they connect to ``[orchestrator] scheduler`` when the project names one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

    from conveyor_dask.config import DaskOrchestratorConfig

#: A worker that dies while running a task fails that task at once: core, not Dask,
#: decides whether the step is retried (``@step(retries=...)``).
SCHEDULER_SETTINGS = {"distributed.scheduler.allowed-failures": 0}


def start_local_cluster(config: DaskOrchestratorConfig) -> LocalCluster:
    """A ``LocalCluster`` of worker processes listening on 127.0.0.1 only."""
    import dask
    from distributed import LocalCluster

    with dask.config.set(SCHEDULER_SETTINGS):
        return LocalCluster(
            n_workers=config.workers,
            threads_per_worker=config.threads_per_worker,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            memory_limit=config.memory_limit,
        )


def connect(address: Any, timeout_s: float) -> Client:
    """A client of the scheduler at ``address`` (or of a cluster object), with a worker."""
    from distributed import Client

    from conveyor.errors import ConveyorError

    try:
        client = Client(address, timeout=f"{timeout_s}s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ConveyorError(
            f"cannot reach the Dask scheduler at {address}: {exc}",
            hint="start it (dask scheduler), or fix [orchestrator] "
            "scheduler; leave it empty for a local cluster",
        ) from None
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except TimeoutError:
        client.close()
        raise ConveyorError(
            f"the Dask scheduler at {address} has no worker after {timeout_s:g} s",
            hint=f"start workers: dask worker {address}",
        ) from None
    return client


def in_worker() -> bool:
    """Whether this code runs as a task on a Dask worker."""
    try:
        from distributed import get_worker
    except ImportError:
        return False
    try:
        get_worker()
    except ValueError:
        return False
    return True


@contextlib.contextmanager
def cluster_client(app: Any) -> Iterator[Client | None]:
    """A client of the cluster this step can use, or ``None`` when there is none."""
    if in_worker():
        from distributed import worker_client

        with worker_client() as client:  # secedes: the worker thread is free meanwhile
            yield client
        return
    from conveyor_dask.config import DaskOrchestratorConfig

    _spec, config = app.backend_spec("orchestrator")
    if not isinstance(config, DaskOrchestratorConfig) or not config.scheduler:
        yield None
        return
    client = connect(config.scheduler, config.connect_timeout_s)
    try:
        yield client
    finally:
        client.close()

"""The metadata store interface: runs, steps, artifacts, metrics, trigger events, lineage.

The values a store hands out are frozen attrs classes; the module imports nothing
heavier than attrs, so interfaces and values can be used by commands that must
start fast.  Runs, steps, artifacts, metrics and definitions live in
:mod:`conveyor.interfaces.records`, lineage values (nodes, edges, graphs, model
records) in :mod:`conveyor.interfaces.lineage`, leases and watcher state in
:mod:`conveyor.interfaces.leases`, the stored trigger event in
:mod:`conveyor.interfaces.triggers`; all are re-exported here.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from conveyor.interfaces.leases import Lease, WatchState
from conveyor.interfaces.lineage import (
    NODE_KINDS,
    Direction,
    FeatureViewUse,
    LineageEdge,
    LineageGraph,
    LineageNode,
    ModelRecord,
    node_id,
    parse_node,
)
from conveyor.interfaces.records import (
    FINISHED_RUN_STATUSES,
    RUN_STATUSES,
    STEP_STATUSES,
    ArtifactRecord,
    ArtifactRef,
    Definition,
    MetricPoint,
    PipelineRecord,
    Run,
    StepExecution,
)
from conveyor.interfaces.triggers import TriggerEvent
from conveyor.monitoring.result import MonitoringResult

# -- the interface --------------------------------------------------------------------


class MetadataStore(abc.ABC):
    """Records what ran, on what, producing what, and why it ran.

    What an implementation must guarantee:

    * every write is one transaction: a crash leaves the whole record or nothing;
    * ids are unique strings; concurrent writers in several processes neither
      lose nor duplicate records;
    * recording the same artifact (URI + fingerprint) twice yields one record;
    * a trigger event with a key is recorded at most once per ``(trigger, key)``,
      and at most one run is started per trigger event (the run key);
    * a lease has at most one holder at a time; taking, renewing and releasing
      are atomic compare-and-set operations;
    * definitions get a new version only when their content changes, and version
      numbers are allocated inside the insert transaction (1, 2, 3, ...);
    * the schema is versioned and migrated on open without racing other processes.

    Unknown ids raise :class:`~conveyor.errors.NotFoundError`.
    """

    # pipelines and runs

    @abc.abstractmethod
    def start_run(
        self,
        pipeline: str,
        *,
        parameters: Mapping[str, Any] | None = None,
        trigger_event: str | None = None,
        code_fingerprint: str | None = None,
        git_commit: str | None = None,
    ) -> str:
        """Record a new ``running`` run of ``pipeline`` (recording the pipeline too).

        A trigger event starts at most one run: when a run was already started
        for ``trigger_event``, :class:`~conveyor.errors.AlreadyExistsError` is raised
        and nothing is recorded (a unique key, as Dagster's run keys).
        """

    @abc.abstractmethod
    def finish_run(self, run_id: str, status: str, *, error: str | None = None) -> None:
        """Mark a run ``succeeded``, ``failed``, ``refused``, ``cancelled`` or ``interrupted``."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> Run:
        """The run (a unique id prefix is enough) with its steps and metrics."""

    @abc.abstractmethod
    def search_runs(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        trigger_event: str | None = None,
        started_after: datetime | None = None,
        started_before: datetime | None = None,
        parameters: Mapping[str, Any] | None = None,
        metrics: Mapping[str, tuple[str, float]] | None = None,
        limit: int = 100,
    ) -> list[Run]:
        """Runs matching every filter given, newest first (without their steps).

        ``parameters`` matches by equality; ``metrics`` maps a metric key to an
        ``(operator, value)`` pair with operator one of ``< <= = >= > !=``,
        compared with the run's latest value for that key.
        """

    def list_runs(
        self, *, pipeline: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[Run]:
        """Runs, newest first."""
        return self.search_runs(pipeline=pipeline, status=status, limit=limit)

    @abc.abstractmethod
    def get_pipeline(self, name: str) -> PipelineRecord:
        """A pipeline the store has seen."""

    @abc.abstractmethod
    def list_pipelines(self) -> list[PipelineRecord]:
        """Every pipeline the store has seen, by name."""

    # steps

    @abc.abstractmethod
    def start_step(
        self,
        run_id: str,
        name: str,
        *,
        inputs: Mapping[str, ArtifactRef] | Sequence[ArtifactRef] = (),
        cache_key: str | None = None,
    ) -> str:
        """Record a ``running`` step execution with its inputs; returns its id."""

    @abc.abstractmethod
    def finish_step(
        self,
        step_id: str,
        status: str,
        *,
        outputs: Mapping[str, ArtifactRef] | Sequence[ArtifactRef] = (),
        metrics: Mapping[str, float] | None = None,
        logs_uri: str | None = None,
        cache_hit: bool = False,
        error: str | None = None,
    ) -> StepExecution:
        """Finish a step execution with its outputs and metrics, in one transaction."""

    @abc.abstractmethod
    def get_step(self, step_id: str) -> StepExecution:
        """One step execution."""

    @abc.abstractmethod
    def find_cached_step(self, cache_key: str) -> StepExecution | None:
        """The newest succeeded execution recorded under ``cache_key``, or ``None``."""

    # artifacts

    @abc.abstractmethod
    def record_artifact(
        self,
        uri: str,
        fingerprint: str,
        *,
        kind: str = "artifact",
        size: int | None = None,
        media_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ArtifactRecord:
        """Record an artifact; recording the same URI and fingerprint again returns it."""

    @abc.abstractmethod
    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        """One artifact record."""

    @abc.abstractmethod
    def find_artifacts(
        self,
        *,
        uri: str | None = None,
        fingerprint: str | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> list[ArtifactRecord]:
        """Artifact records matching every filter given, newest first."""

    # metrics

    def log_metric(
        self, run_id: str, key: str, value: float, *, step: str | None = None, index: int = 0
    ) -> None:
        """Record one metric value (one transaction)."""
        self.log_metrics(run_id, [(key, value, index)], step=step)

    @abc.abstractmethod
    def log_metrics(
        self,
        run_id: str,
        metrics: Mapping[str, float] | Sequence[tuple[str, float, int]],
        *,
        step: str | None = None,
    ) -> None:
        """Record many metric values in one transaction.

        ``metrics`` is a ``{key: value}`` mapping or a sequence of
        ``(key, value, index)`` triples (a series).
        """

    @abc.abstractmethod
    def get_metrics(
        self, run_id: str, *, key: str | None = None, step: str | None = None
    ) -> list[MetricPoint]:
        """Every metric value logged for a run (optionally one key or one step), in order."""

    # trigger events

    @abc.abstractmethod
    def record_trigger_event(
        self,
        trigger: str,
        reason: str,
        *,
        details: Mapping[str, Any] | None = None,
        key: str | None = None,
        fired: bool = True,
    ) -> TriggerEvent:
        """Record a trigger's decision.

        With a ``key``, an event already recorded for ``(trigger, key)`` is returned
        unchanged with ``is_new=False``: launching is at-least-once, the key makes
        the effect exactly-once.
        """

    @abc.abstractmethod
    def get_trigger_event(self, event_id: str) -> TriggerEvent:
        """One trigger event."""

    @abc.abstractmethod
    def list_trigger_events(
        self, *, trigger: str | None = None, limit: int = 50
    ) -> list[TriggerEvent]:
        """Trigger events, newest first."""

    # leases and watcher state (``conveyor watch``)

    @abc.abstractmethod
    def acquire_lease(
        self, name: str, holder: str, *, now: datetime, ttl: timedelta, key: str | None = None
    ) -> Lease | None:
        """Take lease ``name`` for ``holder`` until ``now + ttl``, in one transaction.

        Succeeds when nobody holds it, when its lease expired at ``now``, or when
        ``holder`` holds it already (renewed, ``key`` replaced).  Returns the lease
        taken, or ``None`` while another holder's lease has not expired.
        Times are the caller's (injected), never the store's clock.
        """

    @abc.abstractmethod
    def renew_lease(self, name: str, holder: str, *, now: datetime, ttl: timedelta) -> Lease | None:
        """Extend ``holder``'s lease to ``now + ttl``; ``None`` when it no longer holds it."""

    @abc.abstractmethod
    def release_lease(self, name: str, holder: str) -> bool:
        """Drop ``holder``'s lease; ``False`` when it did not hold it (nothing changes)."""

    @abc.abstractmethod
    def get_lease(self, name: str) -> Lease | None:
        """The lease on ``name``, expired or not, or ``None`` when nobody holds it."""

    @abc.abstractmethod
    def put_watch_state(self, name: str, state: Mapping[str, Any]) -> WatchState:
        """Replace the watcher state stored under ``name`` (one transaction)."""

    @abc.abstractmethod
    def get_watch_state(self, name: str) -> WatchState | None:
        """The watcher state stored under ``name``, or ``None``."""

    # monitoring results

    @abc.abstractmethod
    def record_monitoring_result(self, result: MonitoringResult) -> MonitoringResult:
        """Store a monitoring result; one with the same id replaces it (the window was
        recomputed, e.g. once more labels arrived), so ids stay unique."""

    @abc.abstractmethod
    def get_monitoring_result(self, result_id: str) -> MonitoringResult:
        """One stored result (NotFoundError when absent)."""

    @abc.abstractmethod
    def list_monitoring_results(
        self, *, model: str, version: int | None = None, kind: str | None = None, limit: int = 50
    ) -> list[MonitoringResult]:
        """Results of ``model`` (one version, one kind), newest computation first: the
        drift and performance triggers read the first."""

    # lineage

    @abc.abstractmethod
    def record_model(self, record: ModelRecord) -> None:
        """Record a registered model version as a lineage node with its edges.

        Core calls it after the registry committed a registration, so lineage
        never depends on where the registry keeps its data.  Idempotent:
        recording the same version again changes nothing.  The model file and
        every dataset are recorded as artifacts (URI + fingerprint).
        """

    @abc.abstractmethod
    def model_features(self, model: str, version: int) -> tuple[FeatureViewUse, ...]:
        """A version's ``record_model`` feature views, in order; NotFoundError if unrecorded."""

    @abc.abstractmethod
    def lineage(
        self,
        node: str,
        *,
        direction: Direction = "upstream",
        depth: int = 10,
        max_nodes: int = 1000,
    ) -> LineageGraph:
        """The lineage graph around ``node`` (see :func:`node_id`).

        From a run, traversal enters its steps; from a step, the run it belongs
        to is shown but not expanded, so siblings do not leak into the graph.
        """

    # versioned definitions

    @abc.abstractmethod
    def put_definition(self, kind: str, name: str, spec: Mapping[str, Any]) -> Definition:
        """Store ``spec`` as the next version of ``kind/name``, unless it is unchanged.

        Returns the new version, or the latest one when its content is identical.
        """

    @abc.abstractmethod
    def get_definition(self, kind: str, name: str, version: int | None = None) -> Definition:
        """A version of a definition (the latest when ``version`` is ``None``)."""

    @abc.abstractmethod
    def list_definitions(self, kind: str) -> list[Definition]:
        """The latest version of every definition of ``kind``, by name."""

    @abc.abstractmethod
    def definition_history(self, kind: str, name: str) -> list[Definition]:
        """Every version of one definition, oldest first."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""


__all__ = [
    "FINISHED_RUN_STATUSES",
    "NODE_KINDS",
    "RUN_STATUSES",
    "STEP_STATUSES",
    "ArtifactRecord",
    "ArtifactRef",
    "Definition",
    "Direction",
    "FeatureViewUse",
    "Lease",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "MetadataStore",
    "MetricPoint",
    "ModelRecord",
    "PipelineRecord",
    "Run",
    "StepExecution",
    "TriggerEvent",
    "WatchState",
    "node_id",
    "parse_node",
]

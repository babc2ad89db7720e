"""The metadata store's values: pipelines, artifacts, step executions, metrics, runs,
definitions.

Frozen attrs classes only (nothing heavier is imported), re-exported by
:mod:`conveyor.interfaces.metadata`, which holds the interface that speaks in them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from attrs import Factory, field, frozen

from conveyor.convert import to_tuple

RUN_STATUSES = ("running", "succeeded", "failed", "refused", "cancelled", "interrupted")
FINISHED_RUN_STATUSES = RUN_STATUSES[1:]
STEP_STATUSES = ("running", "succeeded", "failed", "cached", "skipped")


# -- values ---------------------------------------------------------------------------


@frozen(kw_only=True)
class PipelineRecord:
    """A pipeline the store has seen.

    Attributes:
        name: the pipeline's name.
        code_fingerprint: hash of the pipeline's code at its latest run.
        git_commit: the git commit of the project at its latest run, when known.
        created: when the pipeline was first recorded.
        updated: when it was last recorded.
    """

    name: str
    code_fingerprint: str | None = None
    git_commit: str | None = None
    created: datetime
    updated: datetime


@frozen(kw_only=True)
class ArtifactRecord:
    """An artifact a step read or wrote: a URI plus the fingerprint of its content.

    The same URI with new content is a new record (the id is derived from both),
    so lineage always names the exact bytes that flowed.

    Attributes:
        id: stable id derived from ``uri`` and ``fingerprint``.
        uri: where it is stored.
        fingerprint: content hash (SHA-256 hex for artifact-store objects).
        kind: what it is: ``dataset``, ``model``, ``profile``, ``report``, ...
        size: size in bytes, when known.
        media_type: the content type, when known.
        metadata: small JSON-able facts (row count, time range, ...).
        created: when it was first recorded.
    """

    id: str
    uri: str
    fingerprint: str
    kind: str = "artifact"
    size: int | None = None
    media_type: str | None = None
    metadata: dict[str, Any] = Factory(dict)
    created: datetime


#: What step inputs/outputs accept: a recorded artifact, its id, or any object with
#: ``uri`` and ``sha256`` attributes (an :class:`~conveyor.artifacts.ArtifactInfo`),
#: or a mapping with ``uri`` and ``fingerprint`` (recorded on the fly).
ArtifactRef = Any


@frozen(kw_only=True)
class StepExecution:
    """One execution of one step of a run.

    Attributes:
        id: the execution's id.
        run_id: the run it belongs to.
        name: the step's name.
        status: one of :data:`STEP_STATUSES`.
        started: when it started.
        ended: when it ended, or ``None`` while running.
        inputs: the artifacts it read, by input name.
        outputs: the artifacts it wrote, by output name.
        metrics: metrics logged for the step (latest value per key).
        logs_uri: where its logs are stored, if anywhere.
        cache_key: the key under which its outputs may be reused.
        cache_hit: whether the outputs were reused from an earlier execution.
        error: the error message of a failed step.
    """

    id: str
    run_id: str
    name: str
    status: str
    started: datetime
    ended: datetime | None = None
    inputs: dict[str, ArtifactRecord] = Factory(dict)
    outputs: dict[str, ArtifactRecord] = Factory(dict)
    metrics: dict[str, float] = Factory(dict)
    logs_uri: str | None = None
    cache_key: str | None = None
    cache_hit: bool = False
    error: str | None = None

    @property
    def duration_s(self) -> float | None:
        return None if self.ended is None else (self.ended - self.started).total_seconds()


@frozen(kw_only=True)
class MetricPoint:
    """One logged metric value.

    Attributes:
        key: the metric's name.
        value: its value (``nan`` is kept as ``nan``).
        step: the step execution id it belongs to, or ``None`` for the run.
        index: position in a series (epoch, iteration), default 0.
        at: when it was logged.
    """

    key: str
    value: float
    step: str | None = None
    index: int = 0
    at: datetime


@frozen(kw_only=True)
class Run:
    """A pipeline run.

    Attributes:
        id: the run's id.
        pipeline: the pipeline's name.
        status: one of :data:`RUN_STATUSES`.
        started: when it started.
        ended: when it ended, or ``None`` while running.
        parameters: the run's parameters.
        trigger_event: id of the trigger event that caused it, if any.
        code_fingerprint: hash of the pipeline code it ran.
        git_commit: the project's git commit, when known.
        error: why it failed or was refused.
        metrics: run-level metrics (latest value per key).
        steps: its step executions in start order (filled by ``get_run``).
    """

    id: str
    pipeline: str
    status: str
    started: datetime
    ended: datetime | None = None
    parameters: dict[str, Any] = Factory(dict)
    trigger_event: str | None = None
    code_fingerprint: str | None = None
    git_commit: str | None = None
    error: str | None = None
    metrics: dict[str, float] = Factory(dict)
    steps: tuple[StepExecution, ...] = field(default=(), converter=to_tuple)

    @property
    def duration_s(self) -> float | None:
        return None if self.ended is None else (self.ended - self.started).total_seconds()


@frozen(kw_only=True)
class Definition:
    """One version of a named JSON definition (feature views, entities, ...).

    Attributes:
        kind: the namespace (``feature_view``, ``entity``, ...).
        name: the definition's name within its kind.
        version: 1, 2, 3, ...: a new version only when the content changed.
        spec: the definition itself (JSON-able).
        fingerprint: SHA-256 of the canonical JSON of ``spec``.
        created: when this version was stored.
    """

    kind: str
    name: str
    version: int
    spec: dict[str, Any] = Factory(dict)
    fingerprint: str
    created: datetime

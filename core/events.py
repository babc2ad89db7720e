"""Lifecycle events: past-tense values handed to the ``on_*`` hooks.

Events are frozen attrs values.  They carry identifiers and small facts, never
open handles, so a hook can log them, post them to a webhook or queue them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from attrs import Factory, field, frozen


def _now() -> datetime:
    return datetime.now(UTC)


@frozen(kw_only=True)
class RunStarted:
    """A pipeline run began.

    Attributes:
        run_id: the metadata store's id of the run.
        pipeline: the pipeline's name.
        trigger: the trigger event id that caused the run, if any.
        parameters: the run's parameters.
    """

    run_id: str
    pipeline: str
    trigger: str | None = None
    parameters: dict[str, Any] = Factory(dict)
    at: datetime = Factory(_now)


@frozen(kw_only=True)
class RunFinished:
    """A pipeline run ended; ``status`` is ``succeeded``, ``failed`` or ``refused``."""

    run_id: str
    pipeline: str
    status: str
    error: str | None = None
    at: datetime = Factory(_now)


@frozen(kw_only=True)
class StepFinished:
    """One step of a run ended (``succeeded``, ``failed``, ``cached`` or ``skipped``)."""

    run_id: str
    step: str
    status: str
    duration_s: float = 0.0
    cached: bool = False
    error: str | None = None
    at: datetime = Factory(_now)


@frozen(kw_only=True)
class ModelRegistered:
    """A new model version was registered."""

    model: str
    version: int
    artifact_uri: str
    sha256: str
    run_id: str | None = None
    at: datetime = Factory(_now)


@frozen(kw_only=True)
class AliasChanged:
    """A model alias or stage moved from one version to another (``None`` = unset)."""

    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str = ""
    at: datetime = Factory(_now)


@frozen(kw_only=True)
class TriggerFired:
    """A trigger decided a retraining should run, and recorded why."""

    trigger: str
    reason: str
    event_id: str | None = None
    details: dict[str, Any] = Factory(dict)
    at: datetime = Factory(_now)


@frozen(kw_only=True)
class DriftDetected:
    """Monitoring found live inputs drifting from the training profile (skew) or from
    an earlier window (drift); ``result_id`` names the stored monitoring result."""

    model: str
    version: int | None
    features: tuple[str, ...] = field(converter=tuple)
    scores: dict[str, float] = Factory(dict)
    result_id: str | None = None
    at: datetime = Factory(_now)


@frozen(kw_only=True)
class PerformanceDecayed:
    """Monitoring found a model's realized or estimated metric worse than its validation
    metric by more than the tolerance.

    Attributes:
        metric: the metric judged (``auc``, ``rmse``, ...).
        reference: the validation metric registered with the version.
        scores: the newest window's values (``auc``, ``estimated_auc``, ...).
        breached: which of them decayed (``auc`` and/or ``estimated_auc``).
        result_id: the stored monitoring result with the per-window evidence.
    """

    model: str
    version: int
    metric: str
    reference: float | None = None
    scores: dict[str, float] = Factory(dict)
    breached: tuple[str, ...] = field(default=(), converter=tuple)
    result_id: str | None = None
    at: datetime = Factory(_now)

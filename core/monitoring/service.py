"""Monitoring runs for an app: read the log, compute, store the result, fire the events.

:func:`monitor_drift` (``drift`` between two windows of the log, ``skew``
against the training profile) and :func:`monitor_performance` are what the
``conveyor monitor`` commands call.  Each stores one :class:`MonitoringResult`
in the metadata store (the drift and performance triggers read it there) and,
when something breached, fires ``on_drift_detected`` or ``on_performance_decayed``
with the evidence.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from attrs import frozen

from conveyor.errors import ConveyorError, NotFoundError
from conveyor.monitoring.result import MonitoringResult

if TYPE_CHECKING:
    import polars as pl

    from conveyor.interfaces.registry import ModelVersion
    from conveyor.monitoring.drift import DriftThresholds, Progress
    from conveyor.monitoring.estimate import Calibration
    from conveyor.monitoring.performance import PerformanceReport, PerformanceThresholds

DEFAULT_WINDOW = timedelta(days=7)
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@frozen
class Monitored:
    """A stored monitoring result with the report it summarizes."""

    result: MonitoringResult
    report: Any


def parse_span(text: str) -> timedelta:
    """``"7d"``, ``"12h"``, ``"30m"``, ``"2w"`` as a timedelta."""
    match = _SPAN.match(text)
    if not match:
        raise ConveyorError(f"not a duration: {text!r}", hint="write e.g. 30m, 12h, 7d or 2w")
    return timedelta(**{_UNITS[match[2]]: float(match[1])})


def parse_since(text: str, now: datetime) -> datetime:
    """A duration back from ``now`` (``7d``) or an ISO date/time (UTC when naive)."""
    if _SPAN.match(text):
        return now - parse_span(text)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ConveyorError(
            f"not a time or duration: {text!r}",
            hint="write e.g. 7d, 2024-03-01 or 2024-03-01T12:00",
        ) from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def resolve_model(app: Any, model: str, version: int | None = None) -> ModelVersion:
    """The version to monitor: ``version``, else the production alias, else the latest."""
    from conveyor.models.registered import resolve_version

    if version is None:
        production = app.registry.resolve(model, "production")
        if production is not None:
            return production
    return resolve_version(app, model, version)


def _window(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    end = until or datetime.now(UTC)
    start = since or end - DEFAULT_WINDOW
    if start >= end:
        raise ConveyorError(
            f"the window starts ({start:%Y-%m-%d %H:%M}) after it ends",
            hint="pass --since before --until",
        )
    return start, end


def _features(app: Any, mv: ModelVersion, start: datetime, end: datetime) -> pl.LazyFrame:
    """The logged inputs of ``mv`` in ``[start, end)`` as flat columns."""
    import polars as pl

    from conveyor.predictions import scan_predictions

    frame = scan_predictions(app.artifacts, model=mv.name, version=mv.version, start=start, end=end)
    if "features" not in frame.collect_schema().names():
        raise ConveyorError(
            f"no predictions of {mv.name} v{mv.version} are logged between "
            f"{start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC",
            hint="widen --since, or check that the server logs predictions",
        )
    return frame.select(pl.col("features").struct.unnest())


def _store(app: Any, result: MonitoringResult, hook: str, event: Any) -> None:
    app.metadata.record_monitoring_result(result)
    if result.breached:
        app.emit(hook, event)


def monitor_drift(
    app: Any,
    model: str,
    *,
    version: int | None = None,
    kind: str = "drift",
    since: datetime | None = None,
    until: datetime | None = None,
    thresholds: DriftThresholds | None = None,
    wasserstein: bool = False,
    progress: Progress | None = None,
) -> Monitored:
    """Drift (``kind="drift"``: the window against the one before it, of the same length)
    or skew (``kind="skew"``: the window against the training profile) of a model version.
    """
    from conveyor.events import DriftDetected
    from conveyor.models.registered import load_registered_profile
    from conveyor.monitoring.drift import compare

    if kind not in ("drift", "skew"):
        raise ConveyorError(f"unknown drift kind {kind!r}", hint="drift or skew")
    mv = resolve_model(app, model, version)
    start, end = _window(since, until)
    features: list[str] | None = list(mv.signature.names) or None
    current = _features(app, mv, start, end)
    if kind == "skew":
        reference: Any = load_registered_profile(app, mv)
        if reference is None:
            raise NotFoundError(
                f"{mv.name} v{mv.version} has no training profile",
                hint="register models through the training pipeline",
            )
        source = mv.profile_uri
    else:
        reference = _features(app, mv, start - (end - start), start)
        source = f"log {start - (end - start):%Y-%m-%dT%H:%M}..{start:%Y-%m-%dT%H:%M}"
    known = reference.names if kind == "skew" else reference.collect_schema().names()
    # a model input the reference never had (the profile was taken before feature
    # joins, or the log lacks a column) is reported, not compared
    not_compared = [n for n in features or () if n not in known]
    features = [n for n in features or known if n in known]
    report = compare(
        reference,
        current,
        features=features,
        thresholds=thresholds,
        wasserstein=wasserstein,
        progress=progress,
    )
    result = MonitoringResult(
        id=MonitoringResult.make_id(mv.name, mv.version, kind, start, end),
        model=mv.name,
        version=mv.version,
        kind=kind,
        window_start=start,
        window_end=end,
        rows=report.rows_current,
        scores=report.scores(),
        breached=report.breached(),
        details={
            "reference": source,
            "reference_rows": report.rows_reference,
            "drifted_features": list(report.drifted_features),
            "skipped": list(report.skipped),
            "not_compared": not_compared,
            "thresholds": _plain(report.thresholds),
        },
        created=datetime.now(UTC),
    )
    _store(
        app,
        result,
        "on_drift_detected",
        DriftDetected(
            model=mv.name,
            version=mv.version,
            features=report.drifted_features,
            scores=result.scores,
            result_id=result.id,
        ),
    )
    return Monitored(result, report)


def load_calibration(app: Any, mv: ModelVersion) -> Calibration | None:
    """The calibration stored with a binary model at registration, if any."""
    from conveyor.errors import NotFoundError as Missing
    from conveyor.monitoring.estimate import Calibration, calibration_key

    try:
        return Calibration.from_json(app.artifacts.get_bytes(calibration_key(mv.name, mv.sha256)))
    except Missing:
        return None


def labels_from_view(app: Any, name: str, label: str | None) -> tuple[pl.LazyFrame, str, str, str]:
    """``(rows, "entity", join key, event-time column)`` of the label view ``name``.

    A label view is an ordinary feature view whose feature is the outcome: its one
    join key is what the prediction log records as ``entity_key`` and its event
    time says when the outcome became known.  Read through the feature store's
    public API, so any offline store backend serves it.
    """
    view = app.features.get_view(name)
    keys = view.join_keys
    if len(keys) != 1:
        raise ConveyorError(
            f"feature view {name!r} has {len(keys)} join keys ({', '.join(keys)}); the "
            "prediction log records one entity key per row",
            hint="use a label view keyed by the one entity the server logs",
        )
    if view.timestamp_field is None:
        raise ConveyorError(
            f"feature view {name!r} is static (no timestamp_field), so its labels have no "
            "time to join to predictions by",
            hint="give the label view a timestamp_field: when each outcome became known",
        )
    names = [f.name for f in view.features]
    if label is not None and label not in names:
        raise ConveyorError(
            f"feature view {name!r} has no feature {label!r}",
            hint=f"its features are: {', '.join(names)}; pass --label FEATURE",
        )
    return app.features.read_view(view), "entity", keys[0], view.timestamp_field


def monitor_performance(
    app: Any,
    model: str,
    *,
    version: int | None = None,
    labels: str | pl.LazyFrame | pl.DataFrame | None = None,
    label: str | None = None,
    on: str = "request_id",
    entity: str | None = None,
    label_time: str | None = None,
    label_view: str | None = None,
    horizon: timedelta | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    every: timedelta = timedelta(days=1),
    metric: str | None = None,
    thresholds: PerformanceThresholds | None = None,
) -> Monitored:
    """Realized (with labels) and estimated (binary, CBPE) performance per window.

    The labels are ``labels`` (a Parquet path or glob, or a frame) or the offline
    rows of the feature view ``label_view``, whose single join key is matched to the
    log's entity key and whose event time is the label's time (see
    :func:`labels_from_view`); ``label`` is the label column (default: the label
    the model was trained on), ``horizon`` how long after a prediction its label
    may arrive (``None``: any time).
    """
    import polars as pl

    from conveyor.events import PerformanceDecayed
    from conveyor.ml.evaluate import HIGHER_IS_BETTER
    from conveyor.monitoring.performance import DEFAULT_METRIC, join_labels, performance_windows
    from conveyor.predictions import scan_predictions

    mv = resolve_model(app, model, version)
    start, end = _window(since, until)
    objective = mv.signature.objective or "binary"
    frame = scan_predictions(
        app.artifacts, model=mv.name, version=mv.version, start=start, end=end
    ).select("request_id", "time", "entity_key", "prediction")
    label = label or mv.signature.label
    if labels is not None and label_view is not None:
        raise ConveyorError(
            "labels come from one source: a Parquet path or a feature view, not both",
            hint="drop --labels or --label-view",
        )
    if label_view is not None:
        labels, on, entity, label_time = labels_from_view(app, label_view, label)
    if labels is not None:
        if not label:
            raise ConveyorError(
                "which label column? the model has none recorded", hint="pass --label COLUMN"
            )
        source = pl.scan_parquet(labels) if isinstance(labels, str) else labels
        frame = join_labels(
            frame,
            source,
            label=label,
            on=on,
            entity=entity,
            label_time=label_time,
            horizon=horizon,
        )
    else:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("label"))
    metric = metric or DEFAULT_METRIC.get(objective, "auc")
    calibration = load_calibration(app, mv) if objective == "binary" else None
    if labels is None and calibration is None:
        raise ConveyorError(
            f"{mv.name} v{mv.version}: no labels given and no calibration "
            "stored, so there is nothing to measure or estimate",
            hint="pass --labels PATH, or register binary models through "
            "the training pipeline (it stores the calibration)",
        )
    reference = mv.metrics.get(metric)
    report: PerformanceReport = performance_windows(
        frame,
        objective=objective,
        every=every,
        start=start,
        end=end,
        metric=metric,
        reference=reference,
        calibration=calibration,
        thresholds=thresholds,
    )
    result = MonitoringResult(
        id=MonitoringResult.make_id(mv.name, mv.version, "performance", start, end),
        model=mv.name,
        version=mv.version,
        kind="performance",
        window_start=start,
        window_end=end,
        rows=sum(w.rows for w in report.windows),
        scores=report.scores(),
        breached=report.breached(),
        details={
            "metric": metric,
            "higher_is_better": HIGHER_IS_BETTER.get(metric, True),
            "validation": reference,
            "labelled": sum(w.labelled for w in report.windows),
            "calibration_error": report.calibration_error,
            "windows": [_plain(w) for w in report.windows],
            "thresholds": _plain(report.thresholds),
        },
        created=datetime.now(UTC),
    )
    _store(
        app,
        result,
        "on_performance_decayed",
        PerformanceDecayed(
            model=mv.name,
            version=mv.version,
            metric=metric,
            reference=reference,
            scores=result.scores,
            breached=result.breached,
            result_id=result.id,
        ),
    )
    return Monitored(result, report)


def _plain(value: Any) -> dict[str, Any]:
    """An attrs value as JSON-able data (datetimes as ISO strings, NaN as None)."""
    import math

    from attrs import asdict

    def clean(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.isoformat()
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    return {k: clean(v) for k, v in asdict(value).items()}

"""Model performance on live data: delayed labels joined to the prediction log, per window.

Labels come from a table (a Parquet path, a lazy frame, a feature view read by
the caller) and are joined to the log by ``request_id``, or by entity and time
(the first label of the same entity at or after the prediction).  Each window's
metric comes with a 95 % interval and is compared with the validation metric
registered with the model; for binary classifiers the estimated metric (CBPE,
:mod:`.estimate`) is computed on every window too, labelled or not.

A window has **decayed** when its whole interval is worse than the validation
metric by more than the tolerance: an effect (the tolerance) and significance
(the interval) together, as for drift.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from conveyor.convert import to_tuple
from conveyor.errors import ConveyorError
from conveyor.monitoring import stats

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from conveyor.monitoring.estimate import Calibration

#: The metric a window is judged on, by objective.
DEFAULT_METRIC = {"binary": "auc", "regression": "rmse"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
METRICS = {"binary": ("auc", "accuracy"), "regression": ("rmse", "mae")}


@frozen(kw_only=True)
class PerformanceThresholds:
    """When a window counts as decayed.

    Attributes:
        tolerance: how much worse than the validation metric is still fine: absolute
            for ``auc`` / ``accuracy``, relative (a share of it) for ``rmse`` / ``mae``.
        min_rows: windows with fewer labelled rows are reported, never judged.
    """

    tolerance: float = 0.02
    min_rows: int = 100


@frozen(kw_only=True)
class WindowMetric:
    """One window's realized and estimated metric.

    Attributes:
        start, end: the window (``start <= time < end``, UTC).
        rows: predictions in it; labelled: those with a label.
        value, low, high: the realized metric and its 95 % interval (None: no labels).
        estimated, estimated_low, estimated_high: the CBPE estimate (binary only).
        decayed, estimated_decayed: the judgement of each.
    """

    start: datetime
    end: datetime
    rows: int
    labelled: int
    value: float | None = None
    low: float | None = None
    high: float | None = None
    estimated: float | None = None
    estimated_low: float | None = None
    estimated_high: float | None = None
    decayed: bool = False
    estimated_decayed: bool = False


@frozen(kw_only=True)
class PerformanceReport:
    """Per-window performance against the validation metric.

    Attributes:
        metric: the metric judged (``auc``, ``rmse``, ...).
        objective: ``binary`` or ``regression``.
        reference: the validation metric registered with the model (None: unknown).
        windows: one entry per window, oldest first.
        thresholds: the thresholds used.
        calibration_error: the stored calibration's error, when estimates were made.
    """

    metric: str
    objective: str
    reference: float | None
    windows: tuple[WindowMetric, ...] = field(converter=to_tuple)
    thresholds: PerformanceThresholds = PerformanceThresholds()
    calibration_error: float | None = None

    @property
    def decayed(self) -> bool:
        return any(w.decayed or w.estimated_decayed for w in self.windows)

    def scores(self) -> dict[str, float]:
        """The newest window's values (``auc``, ``estimated_auc``, ...), finite only."""
        out: dict[str, float] = {}
        for w in self.windows:  # the newest window with a value wins
            for key, value in ((self.metric, w.value), (f"estimated_{self.metric}", w.estimated)):
                if value is not None and math.isfinite(value):
                    out[key] = value
        if self.reference is not None:
            out[f"validation_{self.metric}"] = self.reference
        return out

    def breached(self) -> tuple[str, ...]:
        names = []
        if any(w.decayed for w in self.windows):
            names.append(self.metric)
        if any(w.estimated_decayed for w in self.windows):
            names.append(f"estimated_{self.metric}")
        return tuple(names)


def join_labels(
    predictions: pl.LazyFrame,
    labels: pl.LazyFrame | pl.DataFrame,
    *,
    label: str,
    on: str = "request_id",
    entity: str | None = None,
    label_time: str | None = None,
    horizon: timedelta | None = None,
) -> pl.LazyFrame:
    """The log's rows with a ``label`` column (null where no label arrived yet).

    ``on="request_id"`` joins by request id.  ``on="entity"`` joins each prediction
    with the first label of the same entity (``entity`` in the labels, the log's
    ``entity_key``) whose ``label_time`` is at or after the prediction's time, and,
    with ``horizon``, at most that long after it (a later label is another outcome).
    """
    import polars as pl

    labels = labels.lazy()
    names = labels.collect_schema().names()
    if label not in names:
        raise ConveyorError(
            f"the label source has no column {label!r}", hint=f"its columns are: {', '.join(names)}"
        )
    if on == "request_id":
        if "request_id" not in names:
            raise ConveyorError(
                "the label source has no request_id column",
                hint="join by entity and time instead (on='entity')",
            )
        right = labels.select(
            pl.col("request_id").cast(pl.String), pl.col(label).alias("label")
        ).unique("request_id", keep="last")
        return predictions.join(right, on="request_id", how="left")
    if on != "entity" or entity is None or label_time is None:
        raise ConveyorError(
            f"unknown label join {on!r}",
            hint="on='request_id', or on='entity' with entity= and label_time=",
        )
    for col in (entity, label_time):
        if col not in names:
            raise ConveyorError(
                f"the label source has no column {col!r}",
                hint=f"its columns are: {', '.join(names)}",
            )
    right = labels.select(
        pl.col(entity).cast(pl.String).alias("entity_key"),
        pl.col(label_time).cast(pl.Datetime("us", "UTC")).alias("_label_at"),
        pl.col(label).alias("label"),
    ).sort("_label_at")
    return (
        predictions.sort("time")
        .join_asof(
            right,
            left_on="time",
            right_on="_label_at",
            by="entity_key",
            strategy="forward",
            tolerance=horizon,
            check_sortedness=False,
        )
        .drop("_label_at")
    )


def realized(metric: str, y: np.ndarray, prediction: np.ndarray) -> tuple[float, float, float]:
    """``(value, low, high)`` of ``metric`` with a 95 % interval."""
    import numpy as np

    n = y.size
    if metric == "auc":
        auc, se = stats.auc_delong(y, prediction)
        return auc, auc - stats.Z95 * se, auc + stats.Z95 * se
    if metric == "accuracy":
        right = float(((prediction >= 0.5) == y.astype(bool)).sum())
        low, high = stats.wilson(right, n)
        return right / n, low, high
    err = prediction - y
    if metric == "mae":
        a = np.abs(err)
        half = stats.Z95 * a.std(ddof=1) / math.sqrt(n) if n > 1 else float("nan")
        return float(a.mean()), float(a.mean() - half), float(a.mean() + half)
    if metric == "rmse":  # interval of the MSE, carried through the square root
        sq = err * err
        mse = float(sq.mean())
        half = stats.Z95 * sq.std(ddof=1) / math.sqrt(n) if n > 1 else float("nan")
        return math.sqrt(mse), math.sqrt(max(mse - half, 0.0)), math.sqrt(mse + half)
    raise ConveyorError(
        f"unknown metric {metric!r}", hint="use auc or accuracy (binary), rmse or mae (regression)"
    )


def _worse(metric: str, bound: float | None, reference: float | None, tolerance: float) -> bool:
    """Whether the interval's best ``bound`` is still worse than the reference by the tolerance."""
    if bound is None or reference is None or not math.isfinite(bound):
        return False
    if metric in ("auc", "accuracy"):
        return bound < reference - tolerance
    return bound > reference * (1 + tolerance)


def performance_windows(
    frame: pl.LazyFrame | pl.DataFrame,
    *,
    objective: str,
    every: timedelta,
    start: datetime,
    end: datetime,
    metric: str | None = None,
    reference: float | None = None,
    calibration: Calibration | None = None,
    thresholds: PerformanceThresholds | None = None,
) -> PerformanceReport:
    """Per-window metric of ``frame`` (``time``, ``prediction``, nullable ``label``)."""
    import numpy as np
    import polars as pl

    from conveyor.monitoring.estimate import estimate_binary

    if objective not in METRICS:
        raise ConveyorError(
            f"performance of a {objective!r} model is not computed",
            hint="binary classifiers and regressors are supported",
        )
    metric = metric or DEFAULT_METRIC[objective]
    if metric not in METRICS[objective]:
        raise ConveyorError(
            f"{metric!r} is not a {objective} metric",
            hint=f"use one of: {', '.join(METRICS[objective])}",
        )
    if every <= timedelta(0):
        raise ConveyorError("the performance window must be positive", hint="e.g. 1d")
    thresholds = thresholds or PerformanceThresholds()
    table = (
        frame.lazy()
        .select("time", pl.col("prediction").cast(pl.Float64), pl.col("label").cast(pl.Float64))
        .collect()
    )
    times = table.get_column("time").dt.epoch("us").to_numpy()
    pred = table.get_column("prediction").to_numpy()
    label = table.get_column("label").to_numpy()
    windows = []
    cursor = start
    while cursor < end:
        stop = min(cursor + every, end)
        inside = (times >= _us(cursor)) & (times < _us(stop))
        p, y = pred[inside], label[inside]
        known = ~np.isnan(y)
        values: dict[str, Any] = {}
        if known.sum() >= 2 and (objective != "binary" or np.unique(y[known]).size == 2):
            v, lo, hi = realized(metric, y[known], p[known])
            judged = known.sum() >= thresholds.min_rows
            best = hi if metric in ("auc", "accuracy") else lo
            values |= {
                "value": v,
                "low": lo,
                "high": hi,
                "decayed": judged and _worse(metric, best, reference, thresholds.tolerance),
            }
        if calibration is not None and metric in ("auc", "accuracy") and p.size:
            est = estimate_binary(p, calibration)
            values |= {
                "estimated": est[metric],
                "estimated_low": est[f"{metric}_low"],
                "estimated_high": est[f"{metric}_high"],
                "estimated_decayed": p.size >= thresholds.min_rows
                and _worse(metric, est[f"{metric}_high"], reference, thresholds.tolerance),
            }
        windows.append(
            WindowMetric(
                start=cursor, end=stop, rows=int(p.size), labelled=int(known.sum()), **values
            )
        )
        cursor = stop
    return PerformanceReport(
        metric=metric,
        objective=objective,
        reference=reference,
        windows=windows,
        thresholds=thresholds,
        calibration_error=None if calibration is None else calibration.error,
    )


def _us(at: datetime) -> int:
    return (at.astimezone(UTC) - _EPOCH) // timedelta(microseconds=1)


__all__: Sequence[str] = (
    "PerformanceReport",
    "PerformanceThresholds",
    "WindowMetric",
    "join_labels",
    "performance_windows",
    "realized",
)

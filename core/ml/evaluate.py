"""Overall and per-slice metrics, implemented with numpy.

Classification (``binary``): ``auc`` (rank-based Mann-Whitney, ties count one
half), ``logloss`` (probabilities clipped to ``[1e-15, 1 - 1e-15]``) and
``accuracy`` (threshold 0.5).  Regression: ``rmse`` and ``mae``.  A metric that
is undefined on a slice (AUC of a one-class slice) is ``None``, never NaN, so
evaluations serialize to strict JSON.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from conveyor.convert import to_tuple
from conveyor.ml.errors import DegenerateDataError

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from conveyor.models.model import TrainedModel

EPS = 1e-15
#: Whether a larger value of each metric is better.
HIGHER_IS_BETTER = {"auc": True, "accuracy": True, "logloss": False, "rmse": False, "mae": False}


def _arrays(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise DegenerateDataError(
            f"{y.size} labels but {p.size} predictions",
            hint="evaluate predictions of the same rows as the labels",
        )
    if not (np.isfinite(y).all() and np.isfinite(p).all()):
        raise DegenerateDataError(
            "labels or predictions contain NaN or infinity",
            hint="drop rows without a label before evaluating",
        )
    return y, p


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``; tied values get the mean of the ranks they span."""
    import numpy as np

    n = x.size
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    change = np.empty(n, dtype=bool)
    if n:
        change[0] = True
        np.not_equal(xs[1:], xs[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], n)
    mean_rank = (starts + 1 + ends) / 2.0
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc_auc(y_true: Any, y_score: Any) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties 1/2.

    NaN when only one class is present.
    """
    y, s = _arrays(y_true, y_score)
    pos = y == 1
    n_pos = int(pos.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = average_ranks(s)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(y_true: Any, y_prob: Any) -> float:
    """Mean binary cross-entropy (natural log) of probabilities for label 1."""
    import numpy as np

    y, p = _arrays(y_true, y_prob)
    if y.size == 0:
        return math.nan
    p = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def accuracy(y_true: Any, y_prob: Any, threshold: float = 0.5) -> float:
    """Share of rows where ``prob >= threshold`` equals the label."""
    import numpy as np

    y, p = _arrays(y_true, y_prob)
    return float(np.mean((p >= threshold) == (y == 1))) if y.size else math.nan


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error."""
    import numpy as np

    y, p = _arrays(y_true, y_pred)
    return float(np.sqrt(np.mean((y - p) ** 2))) if y.size else math.nan


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error."""
    import numpy as np

    y, p = _arrays(y_true, y_pred)
    return float(np.mean(np.abs(y - p))) if y.size else math.nan


METRICS: dict[str, dict[str, Callable[[Any, Any], float]]] = {
    "binary": {"auc": roc_auc, "logloss": log_loss, "accuracy": accuracy},
    "regression": {"rmse": rmse, "mae": mae},
}


def compute_metrics(y_true: Any, y_pred: Any, objective: str = "binary") -> dict[str, float | None]:
    """All metrics of ``objective``; undefined ones are None."""
    if objective not in METRICS:
        raise DegenerateDataError(
            f"unknown objective {objective!r}", hint=f"use one of {', '.join(METRICS)}"
        )
    y, p = _arrays(y_true, y_pred)
    out: dict[str, float | None] = {}
    for name, fn in METRICS[objective].items():
        value = fn(y, p)
        out[name] = value if math.isfinite(value) else None
    return out


@frozen(kw_only=True)
class SliceMetrics:
    """Metrics of the rows where ``column == value``.

    Attributes:
        column: the slicing column.
        value: the slice's value as a string (``"<null>"`` for missing).
        rows: number of rows in the slice.
        metrics: metric -> value (None when undefined on the slice).
    """

    column: str
    value: str
    rows: int
    metrics: dict[str, float | None]


@frozen(kw_only=True)
class Evaluation:
    """Overall and per-slice metrics of one set of predictions, and the predictions.

    Attributes:
        objective: ``binary`` or ``regression``.
        rows: rows evaluated.
        overall: metric -> value.
        slices: per-slice metrics, by column then value.
        model_sha256: the evaluated model's hash (set by :func:`evaluate_model`).
        labels_sha256: SHA-256 of the labels evaluated against (float64, little-endian).
        predictions: the predictions evaluated (float64, one per row), so the steps
            after the evaluation reuse them rather than score the model again
            (:func:`predictions_for`).  The JSON form holds them (base64 of
            little-endian float64), so a stored evaluation's SHA-256 covers them.
    """

    objective: str
    rows: int
    overall: dict[str, float | None]
    slices: tuple[SliceMetrics, ...] = field(default=(), converter=to_tuple)
    model_sha256: str | None = None
    labels_sha256: str | None = None
    predictions: np.ndarray | None = field(default=None, eq=False, repr=False)

    def slice(self, column: str, value: str) -> SliceMetrics:
        """The metrics of one slice (KeyError when absent)."""
        for s in self.slices:
            if s.column == column and s.value == value:
                return s
        raise KeyError((column, value))

    def to_dict(self) -> dict[str, Any]:
        import base64

        import attrs

        data: dict[str, Any] = {
            "objective": self.objective,
            "rows": self.rows,
            "overall": dict(self.overall),
            "slices": [attrs.asdict(s) for s in self.slices],
            "model_sha256": self.model_sha256,
            "labels_sha256": self.labels_sha256,
        }
        if self.predictions is not None:
            raw = self.predictions.astype("<f8").tobytes()
            data["predictions"] = base64.b64encode(raw).decode("ascii")
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        predictions = None
        if data.get("predictions") is not None:
            import base64

            import numpy as np

            raw = base64.b64decode(data["predictions"], validate=True)
            predictions = np.frombuffer(raw, dtype="<f8").astype(np.float64)
        return cls(
            objective=data["objective"],
            rows=data["rows"],
            overall=dict(data["overall"]),
            slices=[SliceMetrics(**s) for s in data.get("slices", ())],
            model_sha256=data.get("model_sha256"),
            labels_sha256=data.get("labels_sha256"),
            predictions=predictions,
        )


def labels_digest(y: np.ndarray) -> str:
    """SHA-256 of labels as little-endian float64 (what an evaluation records)."""
    import hashlib

    return hashlib.sha256(y.astype("<f8").tobytes()).hexdigest()


def evaluate(
    frame: pl.DataFrame,
    predictions: Any,
    *,
    label: str,
    objective: str = "binary",
    slice_by: Sequence[str] = (),
    min_slice_rows: int = 1,
) -> Evaluation:
    """Evaluate ``predictions`` (one per row of ``frame``) against ``frame[label]``,
    overall and for each value of each ``slice_by`` column."""
    import numpy as np
    import polars as pl

    if label not in frame.columns:
        raise DegenerateDataError(
            f"label column {label!r} is not in the table",
            hint=f"columns are: {', '.join(frame.columns)}",
        )
    if frame.height == 0:
        raise DegenerateDataError(
            "cannot evaluate on 0 rows", hint="the holdout is empty: check the split"
        )
    y = frame.get_column(label).cast(pl.Float64).to_numpy()
    p = np.asarray(predictions, dtype=np.float64)
    overall = compute_metrics(y, p, objective)
    slices = []
    for column in slice_by:
        if column not in frame.columns:
            raise DegenerateDataError(
                f"slice column {column!r} is not in the table",
                hint=f"columns are: {', '.join(frame.columns)}",
            )
        groups = (
            frame.select(pl.col(column).cast(pl.String).fill_null("<null>").alias("v"))
            .with_row_index("i")
            .group_by("v")
            .agg(pl.col("i"))
            .sort("v")
        )
        for value, idx in groups.iter_rows():
            if len(idx) < min_slice_rows:
                continue
            rows = np.asarray(idx, dtype=np.int64)
            slices.append(
                SliceMetrics(
                    column=column,
                    value=value,
                    rows=rows.size,
                    metrics=compute_metrics(y[rows], p[rows], objective),
                )
            )
    return Evaluation(
        objective=objective,
        rows=frame.height,
        overall=overall,
        slices=slices,
        labels_sha256=labels_digest(y),
        predictions=p,
    )


def evaluate_model(
    model: TrainedModel,
    frame: pl.DataFrame,
    *,
    slice_by: Sequence[str] = (),
    min_slice_rows: int = 1,
) -> Evaluation:
    """Predict ``frame`` with ``model`` and :func:`evaluate` it (recording the model)."""
    from attrs import evolve

    from conveyor.models.inference import predict

    evaluation = evaluate(
        frame,
        predict(model, frame),
        label=model.signature.label,
        objective=model.signature.objective,
        slice_by=slice_by,
        min_slice_rows=min_slice_rows,
    )
    return evolve(evaluation, model_sha256=model.sha256)


def predictions_for(
    model: TrainedModel, frame: pl.DataFrame, evaluation: Evaluation | None = None
) -> np.ndarray:
    """``model``'s predictions of ``frame``: those ``evaluation`` holds, else scored now.

    Reused predictions must be the evaluation of this model (its SHA-256) on these
    rows (their count and labels); anything else is a wiring mistake and an error.
    """
    import polars as pl

    from conveyor.models.inference import predict

    if evaluation is None or evaluation.predictions is None:
        return predict(model, frame)
    label = model.signature.label
    if evaluation.model_sha256 != model.sha256:
        problem = f"is of model {evaluation.model_sha256}, not of this one ({model.sha256})"
    elif evaluation.rows != frame.height or label not in frame.columns:
        problem = f"has {evaluation.rows} rows, this table {frame.height}"
    elif evaluation.labels_sha256 != labels_digest(
        frame.get_column(label).cast(pl.Float64).to_numpy()
    ):
        problem = "was made on other rows (their labels differ)"
    else:
        return evaluation.predictions
    raise DegenerateDataError(
        f"the evaluation passed in {problem}",
        hint="pass the output of evaluate_candidate(model, holdout) for the same model and holdout",
    )

"""Estimated performance before labels arrive: confidence-based estimation (CBPE).

A binary classifier's calibrated probability ``p`` of a row is the chance its
label is 1.  Over a window, the expected confusion counts follow from the
probabilities alone, and with them the expected accuracy and ROC AUC (NannyML's
CBPE).  The estimate holds while the concept ``P(y | x)`` is unchanged and the
probabilities are calibrated, which is why the calibration map is fitted on the
holdout when a model is registered and its error is checked and stored with it.
A covariate shift (new inputs, same concept) moves the estimate as it moves the
realized metric; a concept shift is only seen once labels arrive.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from attrs import asdict, field, frozen

from conveyor.convert import to_tuple
from conveyor.errors import ValidationError
from conveyor.monitoring.stats import Z95, hanley_mcneil_se

if TYPE_CHECKING:
    import numpy as np

#: The calibration fitted at registration, beside the model: ``<model dir>/calibration.json``.
CALIBRATION_FILE = "calibration.json"
#: Calibration error above which an estimate is flagged as unreliable.
MAX_CALIBRATION_ERROR = 0.05
_BINS = 10


@frozen(kw_only=True)
class Calibration:
    """An isotonic map from raw scores to calibrated probabilities, fitted on a holdout.

    Attributes:
        scores, probabilities: the map's knots (increasing scores), interpolated linearly.
        rows: holdout rows it was fitted on.
        error_raw: expected calibration error (10 equal-width bins) of the raw scores.
        error: the same of the calibrated probabilities, cross-fitted (2 folds), so
            the check is not done on the rows the map was fitted to.
        threshold: the decision threshold accuracy is estimated at.
    """

    scores: tuple[float, ...] = field(converter=to_tuple)
    probabilities: tuple[float, ...] = field(converter=to_tuple)
    rows: int
    error_raw: float
    error: float
    threshold: float = 0.5

    @property
    def reliable(self) -> bool:
        """Whether the cross-fitted calibration error is within :data:`MAX_CALIBRATION_ERROR`."""
        return self.error <= MAX_CALIBRATION_ERROR

    def apply(self, scores: Any) -> np.ndarray:
        """Calibrated probabilities of raw ``scores``."""
        import numpy as np

        return np.interp(np.asarray(scores, dtype=float), self.scores, self.probabilities)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Calibration:
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f"not a stored calibration: {exc}",
                hint="calibrations are written by Calibration.to_json()",
            ) from None


def _isotonic(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators: knots (mean score, mean label) of the increasing fit."""
    import numpy as np

    order = np.argsort(scores, kind="stable")
    x, y = scores[order], labels[order].astype(float)
    # equal scores form one block from the start
    uniq, start = np.unique(x, return_index=True)
    sums = np.add.reduceat(y, start)
    weights = np.diff(np.append(start, x.size)).astype(float)
    means, wts, xs = [], [], []
    for value, s, w in zip(uniq, sums, weights, strict=True):
        means.append(s / w)
        wts.append(w)
        xs.append(value * w)
        while len(means) > 1 and means[-2] >= means[-1]:
            w2 = wts[-2] + wts[-1]
            means[-2] = (means[-2] * wts[-2] + means[-1] * wts[-1]) / w2
            xs[-2] += xs[-1]
            wts[-2] = w2
            del means[-1], wts[-1], xs[-1]
    knots = np.array(xs) / np.array(wts)
    return knots, np.array(means)


def calibration_error(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Expected calibration error over 10 equal-width probability bins."""
    import numpy as np

    p = np.clip(np.asarray(probabilities, dtype=float), 0.0, 1.0)
    y = np.asarray(labels, dtype=float)
    which = np.minimum((p * _BINS).astype(int), _BINS - 1)
    total = 0.0
    for b in range(_BINS):
        inside = which == b
        if inside.any():
            total += inside.sum() * abs(p[inside].mean() - y[inside].mean())
    return float(total / max(p.size, 1))


def fit_calibration(
    labels: Any, scores: Any, *, threshold: float = 0.5, seed: int = 0
) -> Calibration:
    """Fit the isotonic calibration of a binary classifier's scores on a labelled holdout."""
    import numpy as np

    y = np.asarray(labels).astype(float)
    s = np.asarray(scores, dtype=float)
    if y.size < 20 or np.unique(y).size < 2:
        raise ValidationError(
            "calibration needs a holdout with both classes and 20+ rows",
            hint="register the model with a larger holdout",
        )
    knots, probs = _isotonic(s, y)
    fold = np.random.default_rng(seed).random(y.size) < 0.5
    crossed = np.empty(y.size)
    for part in (fold, ~fold):
        k, p = _isotonic(s[~part], y[~part])
        crossed[part] = np.interp(s[part], k, p)
    return Calibration(
        scores=knots.tolist(),
        probabilities=probs.tolist(),
        rows=int(y.size),
        error_raw=calibration_error(s, y),
        error=calibration_error(crossed, y),
        threshold=threshold,
    )


def estimate_binary(scores: Any, calibration: Calibration) -> dict[str, float]:
    """Estimated ``auc`` and ``accuracy`` of a window, each with a 95 % interval.

    Keys: ``auc``, ``auc_low``, ``auc_high``, ``accuracy``, ``accuracy_low``,
    ``accuracy_high`` and ``rows``; NaN when the window is empty.
    """
    import numpy as np

    s = np.asarray(scores, dtype=float)
    nan = float("nan")
    if s.size == 0:
        return dict.fromkeys(
            ("auc", "auc_low", "auc_high", "accuracy", "accuracy_low", "accuracy_high"), nan
        ) | {"rows": 0}
    p = calibration.apply(s)
    # accuracy: each row is right with probability p (predicted 1) or 1 - p (predicted 0)
    right = np.where(s >= calibration.threshold, p, 1.0 - p)
    accuracy = float(right.mean())
    acc_se = math.sqrt(float((right * (1 - right)).sum())) / s.size
    # AUC: expected positive/negative mass per distinct score, pairs counted in score order
    inverse = np.unique(s, return_inverse=True)[1]
    pos = np.bincount(inverse, weights=p)
    neg = np.bincount(inverse, weights=1.0 - p)
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos <= 0 or total_neg <= 0:
        auc = se = nan
    else:
        below = np.cumsum(neg) - neg  # negative mass strictly below each score
        auc = float(np.sum(pos * (below + 0.5 * neg)) / (total_pos * total_neg))
        se = hanley_mcneil_se(auc, total_pos, total_neg)
    return {
        "auc": auc,
        "auc_low": auc - Z95 * se,
        "auc_high": auc + Z95 * se,
        "accuracy": accuracy,
        "accuracy_low": max(0.0, accuracy - Z95 * acc_se),
        "accuracy_high": min(1.0, accuracy + Z95 * acc_se),
        "rows": int(s.size),
    }


def calibration_key(model: str, sha256: str) -> str:
    """Where the calibration of a model's bytes is stored, beside its model text."""
    return f"models/{model}/{sha256}/{CALIBRATION_FILE}"


def store_calibration(
    store: Any, model: str, sha256: str, labels: Any, scores: Any
) -> Calibration | None:
    """Fit the calibration on a holdout and store it beside the model (once per model bytes).

    Returns None when the holdout cannot support one (one class, too few rows):
    estimates are then not made, and realized performance still is.
    """
    from conveyor.errors import NotFoundError

    key = calibration_key(model, sha256)
    try:
        return Calibration.from_json(store.get_bytes(key))
    except NotFoundError:
        pass
    try:
        calibration = fit_calibration(labels, scores)
    except ValidationError:
        return None
    store.put_bytes(key, calibration.to_json().encode(), media_type="application/json")
    return calibration

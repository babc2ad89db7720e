"""The gate's seeded paired bootstrap: candidate minus production on the same resamples."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.errors import ValidationError
from conveyor.ml.evaluate import HIGHER_IS_BETTER

if TYPE_CHECKING:
    import numpy as np


def _bootstrap_counts(rng: np.random.Generator, n: int, b: int) -> np.ndarray:
    """``b`` rows of resample counts over ``n`` items (each row sums to ``n``)."""
    import numpy as np

    draws = rng.integers(0, n, size=(b, n), dtype=np.int64)
    draws += (np.arange(b, dtype=np.int64) * n)[:, None]
    # float32 holds the counts exactly and halves the memory traffic of what follows
    return np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(np.float32)


class _Scorer:
    """Computes a metric under many resample weightings at once (rows of ``W``)."""

    def __init__(self, metric: str, y: np.ndarray, p: np.ndarray) -> None:
        import numpy as np

        self.metric = metric
        self.n = y.size
        if metric == "auc":
            self.order = np.argsort(p, kind="mergesort")
            ps = p[self.order]
            change = np.empty(self.n, dtype=bool)
            change[0] = True
            np.not_equal(ps[1:], ps[:-1], out=change[1:])
            self.starts = np.flatnonzero(change)
            self.tied = self.starts.size < self.n
            self.pos = (y[self.order] == 1).astype(np.float32)
        else:
            if metric == "logloss":
                q = np.clip(p, 1e-15, 1 - 1e-15)
                loss = -(y * np.log(q) + (1 - y) * np.log1p(-q))
            elif metric == "accuracy":
                loss = ((p >= 0.5) == (y == 1)).astype(np.float64)
            elif metric == "rmse":
                loss = (y - p) ** 2
            else:  # mae
                loss = np.abs(y - p)
            self.loss = loss.astype(np.float32)

    def __call__(self, w: np.ndarray) -> np.ndarray:
        import numpy as np

        if self.metric != "auc":
            value = (w @ self.loss).astype(np.float64) / self.n
            return np.sqrt(value) if self.metric == "rmse" else value
        ws = w[:, self.order]
        wp = ws * self.pos
        wn = ws - wp
        if self.tied:
            wp = np.add.reduceat(wp, self.starts, axis=1)
            wn = np.add.reduceat(wn, self.starts, axis=1)
        below = np.cumsum(wn, axis=1)
        below -= 0.5 * wn  # negatives strictly below, plus half of the tied ones
        num = np.einsum("ij,ij->i", wp, below, dtype=np.float64)
        den = wp.sum(axis=1, dtype=np.float64) * wn.sum(axis=1, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def paired_bootstrap(
    y: Any,
    candidate: Any,
    incumbent: Any,
    *,
    metric: str,
    n_bootstrap: int = 1000,
    seed: int = 0,
    chunk_elements: int = 4_000_000,
) -> np.ndarray:
    """Bootstrap distribution of ``metric(candidate) - metric(incumbent)``, oriented so
    that positive means the candidate is better; both scored on the same resamples.

    Vectorized: resamples are drawn as count vectors in chunks of rows of a
    ``(b, n)`` matrix, and every metric is a weighted sum (AUC via one sort per
    model and cumulative sums), so no resample is ever materialized.
    """
    import numpy as np

    y = np.asarray(y, dtype=np.float64)
    c = np.asarray(candidate, dtype=np.float64)
    i = np.asarray(incumbent, dtype=np.float64)
    n = y.size
    if n == 0:
        raise ValidationError("cannot bootstrap an empty holdout")
    score_c, score_i = _Scorer(metric, y, c), _Scorer(metric, y, i)
    rng = np.random.default_rng(seed)
    chunk = max(1, chunk_elements // n)
    out = []
    done = 0
    while done < n_bootstrap:
        b = min(chunk, n_bootstrap - done)
        w = _bootstrap_counts(rng, n, b)
        out.append(score_c(w) - score_i(w))
        done += b
    diffs = np.concatenate(out)
    return diffs if HIGHER_IS_BETTER[metric] else -diffs

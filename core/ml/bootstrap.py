"""The gate's seeded paired bootstrap: candidate minus production on the same resamples.

Resample ``k`` is row ``k`` of one matrix of resample indices,
``default_rng(seed).integers(0, n, size=(n_bootstrap, n))`` (drawn in chunks of
rows, which gives the same matrix), so two models bootstrapped with one seed see the
same resamples: that is the pairing, and it lets the gate bootstrap the candidate
while production is still being canary-loaded.  Every metric is computed for a whole
chunk of resamples at once: means of per-row losses by one gather, and AUC from
counts: each row's drawn items are binned by (tie group of the score, label) with
one ``bincount``, and the positives' ranks among the negatives come from a
cumulative sum over the tie groups (ties count one half), all in integers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.errors import ValidationError
from conveyor.ml.evaluate import HIGHER_IS_BETTER

if TYPE_CHECKING:
    import numpy as np

#: resample indices held at once (the chunk's arrays stay in cache; larger is slower)
CHUNK_ELEMENTS = 250_000


def resample_indices(n: int, n_bootstrap: int, seed: int) -> Any:
    """The resample-index matrix, ``(rows, n)`` at a time, ``n_bootstrap`` rows in all."""
    import numpy as np

    rng = np.random.default_rng(seed)
    chunk = max(1, CHUNK_ELEMENTS // n)
    done = 0
    while done < n_bootstrap:
        rows = min(chunk, n_bootstrap - done)
        yield rng.integers(0, n, size=(rows, n), dtype=np.int64)
        done += rows


def bootstrap_metric(
    y: Any, predictions: Any, *, metric: str, n_bootstrap: int = 1000, seed: int = 0
) -> np.ndarray:
    """``metric`` of ``predictions`` on each seeded resample of the rows (NaN where it is
    undefined, e.g. an AUC resample with one class)."""
    import numpy as np

    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(predictions, dtype=np.float64)
    n = y.size
    if n == 0:
        raise ValidationError("cannot bootstrap an empty holdout")
    if p.shape != y.shape:
        raise ValidationError(f"{p.size} predictions for {n} labels")
    if metric not in HIGHER_IS_BETTER:
        raise ValidationError(f"no bootstrap for metric {metric!r}")
    of_rows = _auc_of_rows(y, p) if metric == "auc" else _mean_of_rows(metric, y, p)
    return np.concatenate([of_rows(d) for d in resample_indices(n, n_bootstrap, seed)])


def paired_bootstrap(
    y: Any,
    candidate: Any,
    incumbent: Any,
    *,
    metric: str,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """Bootstrap distribution of ``metric(candidate) - metric(incumbent)``, oriented so
    that positive means the candidate is better; both scored on the same resamples."""
    values = bootstrap_metric(y, candidate, metric=metric, n_bootstrap=n_bootstrap, seed=seed)
    return paired_difference(
        values,
        bootstrap_metric(y, incumbent, metric=metric, n_bootstrap=n_bootstrap, seed=seed),
        metric,
    )


def paired_difference(candidate: np.ndarray, incumbent: np.ndarray, metric: str) -> np.ndarray:
    """Per-resample ``candidate - incumbent`` from two :func:`bootstrap_metric` results of
    one seed, oriented so that positive means the candidate is better."""
    diffs = candidate - incumbent
    return diffs if HIGHER_IS_BETTER[metric] else -diffs


def _mean_of_rows(metric: str, y: np.ndarray, p: np.ndarray) -> Any:
    import numpy as np

    if metric == "logloss":
        q = np.clip(p, 1e-15, 1 - 1e-15)
        loss = -(y * np.log(q) + (1 - y) * np.log1p(-q))
    elif metric == "accuracy":
        loss = ((p >= 0.5) == (y == 1)).astype(np.float64)
    elif metric == "rmse":
        loss = (y - p) ** 2
    else:  # mae
        loss = np.abs(y - p)

    def of_rows(draws: np.ndarray) -> np.ndarray:
        means = loss[draws].mean(axis=1)
        return np.sqrt(means) if metric == "rmse" else means

    return of_rows


def _auc_of_rows(y: np.ndarray, p: np.ndarray) -> Any:
    import numpy as np

    n = p.size
    order = np.argsort(p, kind="mergesort")
    ordered = p[order]
    new_group = np.empty(n, dtype=bool)
    new_group[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new_group[1:])
    groups = int(new_group.sum())
    group = np.empty(n, dtype=np.int64)
    group[order] = np.cumsum(new_group) - 1
    # bin of each row: its tie group, offset by `groups` for positives
    code = group + groups * (y == 1)

    def of_rows(draws: np.ndarray) -> np.ndarray:
        rows = draws.shape[0]
        keys = code[draws]
        keys += (np.arange(rows, dtype=np.int64) * (2 * groups))[:, None]
        counts = np.bincount(keys.ravel(), minlength=rows * 2 * groups)
        counts = counts.reshape(rows, 2, groups)
        negatives, positives = counts[:, 0], counts[:, 1]
        # twice (negatives strictly below + half the tied ones), to stay in integers
        below = 2 * np.cumsum(negatives, axis=1) - negatives
        pairs = np.einsum("ij,ij->i", positives, below).astype(np.float64)
        total = positives.sum(axis=1) * negatives.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, pairs / (2.0 * np.where(total > 0, total, 1)), np.nan)

    return of_rows

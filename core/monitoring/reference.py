"""What a feature is compared against: a reference sample, or a training-data profile.

A sample (a frame: a window of the prediction log, the training table) gives
exact statistics.  A :class:`~conveyor.ml.profile.DataProfile` (stored with
every model version) gives its quantiles and category frequencies: PSI is then
computed on the profile's quantile bins, and the KS statistic is the largest
CDF gap at those quantiles (a lower bound of the full statistic).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from attrs import frozen

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from conveyor.ml.profile import ColumnProfile

NUMERIC, CATEGORICAL = "numeric", "categorical"
#: Reference quantiles that bound the PSI bins of a sample (deciles).
DECILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@frozen
class NumericReference:
    """One numeric feature's reference.

    Attributes:
        rows: reference rows (missing ones included).
        missing: rows that were null, NaN or infinite.
        edges: PSI bin edges (reference quantiles); bins are ``(-inf, e0], ..., (ek, inf)``.
        shares: the reference's share in each bin.
        std: standard deviation of the finite values (scales the Wasserstein distance).
        values: the sorted finite sample, or None for a profile.
        points, levels: for a profile, values at which its CDF is known and the CDF there.
    """

    rows: int
    missing: int
    edges: Any
    shares: Any
    std: float
    values: Any = None
    points: Any = None
    levels: Any = None


@frozen
class CategoricalReference:
    """One categorical feature's reference.

    Attributes:
        rows: reference rows (missing ones included).
        missing: null rows.
        counts: category -> count of non-null rows (profile: share x non-null rows).
        complete: False when the profile kept only the most frequent categories
            (new-category checks are then skipped).
    """

    rows: int
    missing: int
    counts: dict[str, float]
    complete: bool = True


def finite_sorted(series: pl.Series) -> np.ndarray:
    """The finite values of a numeric series as a sorted float64 array."""
    import numpy as np
    import polars as pl

    values = series.cast(pl.Float64).to_numpy()  # nulls become NaN
    finite = np.isfinite(values)
    return np.sort(values if finite.all() else values[finite])


def numeric_from_sample(series: pl.Series) -> NumericReference:
    """The reference of a numeric column from its sample."""
    import numpy as np

    from conveyor.monitoring.stats import bin_shares, sorted_quantiles

    values = finite_sorted(series)
    if values.size:
        edges = np.unique(sorted_quantiles(values, DECILES))
        shares = bin_shares(values, edges)
        std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    else:
        edges, shares, std = np.empty(0), np.ones(1), 0.0
    return NumericReference(
        rows=series.len(),
        missing=series.len() - values.size,
        edges=edges,
        shares=shares,
        std=std,
        values=values,
    )


def categorical_from_sample(series: pl.Series) -> CategoricalReference:
    """The reference of a categorical column from its sample."""
    return CategoricalReference(
        rows=series.len(), missing=series.null_count(), counts=category_counts(series)
    )


def category_counts(series: pl.Series) -> dict[str, float]:
    """Category (as a string) -> count of non-null rows, most frequent first."""
    import polars as pl

    counts = series.drop_nulls().cast(pl.String).value_counts(sort=True, name="n")
    return {str(k): float(v) for k, v in counts.iter_rows()}


def from_profile(column: ColumnProfile, rows: int) -> NumericReference | CategoricalReference:
    """The reference of one profiled column (numeric or categorical)."""
    import numpy as np

    missing = round(column.missing_rate * rows)
    if column.categorical is not None:
        present = max(rows - round(column.null_rate * rows), 0)
        return CategoricalReference(
            rows=rows,
            missing=rows - present,
            counts={k: v * present for k, v in column.categorical.frequencies.items()},
            complete=not column.categorical.truncated,
        )
    stats = column.numeric
    known = sorted(
        (float(q), v) for q, v in (stats.quantiles if stats else {}).items() if v is not None
    )
    # equal values at several quantiles: the CDF there is the highest of their levels
    by_value: dict[float, float] = {}
    for level, value in known:
        by_value[value] = max(level, by_value.get(value, 0.0))
    points = np.array(sorted(by_value))
    levels = np.array([by_value[p] for p in points])
    inner = (points > points[0]) & (points < points[-1]) if points.size else points.astype(bool)
    edges = points[inner] if points.size > 2 else points
    edge_levels = levels[inner] if points.size > 2 else levels
    shares = np.diff(np.concatenate(([0.0], edge_levels, [1.0])))
    std = float(stats.std) if stats is not None and stats.std is not None else 0.0
    return NumericReference(
        rows=rows,
        missing=missing,
        edges=edges,
        shares=shares,
        std=std,
        points=points,
        levels=levels,
    )

"""Drift and training-serving skew: per-feature tests and a dataset-level decision.

:func:`compare` reads the current data (and a reference sample) a few columns
at a time from a lazy frame, so a Parquet file larger than memory is compared
column batch by column batch; the reference is a sample (another window of the
log: drift) or the training profile (skew).

A feature drifts when an **effect size** crosses its threshold *and* the
difference is statistically significant at ``alpha``: effect sizes keep large
samples from flagging tiny, harmless differences; the significance test keeps
small samples from flagging noise (``docs/monitoring.md``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from conveyor.convert import to_tuple
from conveyor.errors import ConveyorError
from conveyor.monitoring import stats
from conveyor.monitoring.reference import (
    CATEGORICAL,
    NUMERIC,
    CategoricalReference,
    NumericReference,
    categorical_from_sample,
    category_counts,
    finite_sorted,
    from_profile,
    numeric_from_sample,
)

if TYPE_CHECKING:
    import polars as pl

    from conveyor.ml.profile import DataProfile

Progress = Callable[[int, int], None]
#: Categories drawn per feature in reports; the rest are summed as "(other)".
PLOTTED_CATEGORIES = 12


@frozen(kw_only=True)
class DriftThresholds:
    """When a feature counts as drifted (defaults and why: ``docs/monitoring.md``).

    Attributes:
        alpha: significance level every effect must also pass.
        ks: numeric effect: the Kolmogorov-Smirnov statistic (largest CDF gap).
        js: categorical effect: the Jensen-Shannon distance (base 2).
        psi: PSI over the reference-quantile (or category) bins, either kind.
        missing: absolute change of the missing rate.
        new_categories: share of current rows in categories the reference never had.
        wasserstein: Wasserstein distance over the reference's standard deviation
            (only when it is computed).
        min_features: the dataset drifts when at least this many features drift.
    """

    alpha: float = 0.01
    ks: float = 0.05
    js: float = 0.1
    psi: float = 0.2
    missing: float = 0.05
    new_categories: float = 0.01
    wasserstein: float = 0.1
    min_features: int = 1


@frozen(kw_only=True)
class FeatureDrift:
    """The comparison of one feature.

    Attributes:
        name, kind: the feature and ``numeric`` / ``categorical``.
        rows_reference, rows_current: rows compared (missing ones included).
        missing_reference, missing_current: missing rates.
        test, statistic, p_value: ``ks`` or ``chi2`` and its result.
        effect, effect_size: ``ks`` or ``js`` and its value (the default decision).
        psi: PSI over ``bins``.
        js: Jensen-Shannon distance (categorical features).
        wasserstein: normalised Wasserstein distance (numeric, when asked for).
        new_category_share: current rows in unseen categories (categorical).
        breached: the checks over threshold (``ks``, ``psi``, ``missing``, ...).
        bins, reference_shares, current_shares: the binned distributions (for plots).
    """

    name: str
    kind: str
    rows_reference: int
    rows_current: int
    missing_reference: float
    missing_current: float
    test: str
    statistic: float
    p_value: float
    effect: str
    effect_size: float
    psi: float
    js: float | None = None
    wasserstein: float | None = None
    new_category_share: float | None = None
    breached: tuple[str, ...] = field(default=(), converter=to_tuple)
    bins: tuple[str, ...] = field(default=(), converter=to_tuple)
    reference_shares: tuple[float, ...] = field(default=(), converter=to_tuple)
    current_shares: tuple[float, ...] = field(default=(), converter=to_tuple)

    @property
    def drifted(self) -> bool:
        return bool(self.breached)


@frozen(kw_only=True)
class DriftReport:
    """A dataset-level drift decision with its per-feature evidence.

    Attributes:
        reference: ``profile`` or ``sample``.
        rows_reference, rows_current: rows of each side.
        features: one comparison per feature.
        skipped: features that could not be compared (temporal, nested, ...).
        thresholds: the thresholds used.
    """

    reference: str
    rows_reference: int
    rows_current: int
    features: tuple[FeatureDrift, ...] = field(converter=to_tuple)
    skipped: tuple[str, ...] = field(default=(), converter=to_tuple)
    thresholds: DriftThresholds = DriftThresholds()

    @property
    def drifted_features(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.drifted)

    @property
    def drifted(self) -> bool:
        """The dataset-level decision."""
        return len(self.drifted_features) >= self.thresholds.min_features

    def scores(self) -> dict[str, float]:
        """Flat score names -> values (``psi.tenure``, ``ks.tenure``, ...), finite only."""
        out: dict[str, float] = {
            "drifted_share": len(self.drifted_features) / max(len(self.features), 1)
        }
        for f in self.features:
            for key, value in (
                (f.effect, f.effect_size),
                ("psi", f.psi),
                ("p", f.p_value),
                ("missing", f.missing_current),
                ("wasserstein", f.wasserstein),
                ("new_categories", f.new_category_share),
            ):
                if value is not None and math.isfinite(value):
                    out[f"{key}.{f.name}"] = float(value)
        return out

    def breached(self) -> tuple[str, ...]:
        """Score names over threshold (``ks.tenure``, ``missing.plan``, ...)."""
        return tuple(f"{check}.{f.name}" for f in self.features for check in f.breached)


def compare(
    reference: pl.LazyFrame | pl.DataFrame | DataProfile,
    current: pl.LazyFrame | pl.DataFrame,
    *,
    features: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    thresholds: DriftThresholds | None = None,
    wasserstein: bool = False,
    progress: Progress | None = None,
    batch_bytes: int = 256 << 20,
) -> DriftReport:
    """Compare ``current`` with ``reference`` feature by feature.

    ``reference`` is a frame (drift between samples) or a training profile
    (skew).  ``features`` defaults to every column of the reference the current
    data has too; ``categorical`` names numeric columns to compare as categories.
    Columns are read ``batch_bytes`` at a time.
    """
    import polars as pl

    from conveyor.ml.profile import DataProfile

    thresholds = thresholds or DriftThresholds()
    cur = current.lazy()
    cur_schema = cur.collect_schema()
    profile = reference if isinstance(reference, DataProfile) else None
    ref = None if isinstance(reference, DataProfile) else reference.lazy()
    kinds = _kinds(profile, None if ref is None else ref.collect_schema(), categorical)
    names = [n for n in (features or kinds) if n in kinds]
    absent = [n for n in (features or ()) if n not in kinds]
    if absent:
        raise ConveyorError(
            f"drift: the reference has no feature {', '.join(absent)}",
            hint="name features the model was trained on",
        )
    skipped = tuple(n for n in names if kinds[n] is None)
    names = [n for n in names if kinds[n] is not None]
    if not names:
        raise ConveyorError(
            "drift: no numeric or categorical feature to compare",
            hint="pass the features, or a reference with such columns",
        )
    rows_cur = cur.select(pl.len()).collect().item()
    if profile is not None:
        rows_ref = profile.row_count
    else:
        assert ref is not None  # no profile: a frame was given
        rows_ref = ref.select(pl.len()).collect().item()
    for side, rows in (("reference", rows_ref), ("current data", rows_cur)):
        if rows == 0:
            raise ConveyorError(
                f"drift: the {side} has no rows", hint="widen the window (--since / --until)"
            )
    per_batch = max(1, batch_bytes // (8 * max(rows_cur + (0 if ref is None else rows_ref), 1)))
    results: list[FeatureDrift] = []
    for start in range(0, len(names), per_batch):
        chunk = names[start : start + per_batch]
        cur_frame = cur.select(
            [
                pl.col(n)
                if n in cur_schema
                else pl.lit(None, dtype=pl.Float64 if kinds[n] == NUMERIC else pl.String).alias(n)
                for n in chunk
            ]
        ).collect()
        ref_frame = None if ref is None else ref.select(chunk).collect()
        for name in chunk:
            kind = kinds[name]
            if ref_frame is None:
                assert profile is not None  # no reference frame: a profile was given
                column_ref = from_profile(profile.column(name), rows_ref)
            elif kind == NUMERIC:
                column_ref = numeric_from_sample(ref_frame.get_column(name))
            else:
                column_ref = categorical_from_sample(ref_frame.get_column(name))
            series = cur_frame.get_column(name)
            results.append(
                _numeric(name, column_ref, series, thresholds, wasserstein)
                if isinstance(column_ref, NumericReference)
                else _categorical(name, column_ref, series, thresholds)
            )
        del cur_frame, ref_frame
        if progress is not None:
            progress(len(results), len(names))
    return DriftReport(
        reference="profile" if profile is not None else "sample",
        rows_reference=rows_ref,
        rows_current=rows_cur,
        features=results,
        skipped=skipped,
        thresholds=thresholds,
    )


def _kinds(
    profile: DataProfile | None, schema: Any, categorical: Sequence[str]
) -> dict[str, str | None]:
    from conveyor.ml.profile import BOOLEAN, column_kind
    from conveyor.ml.profile import CATEGORICAL as P_CATEGORICAL
    from conveyor.ml.profile import NUMERIC as P_NUMERIC

    found = (
        {c.name: c.kind for c in profile.columns if c.name != profile.label}
        if profile is not None
        else {n: column_kind(t) for n, t in schema.items()}
    )
    out: dict[str, str | None] = {}
    for name, kind in found.items():
        if name in categorical or kind in (P_CATEGORICAL, BOOLEAN):
            out[name] = CATEGORICAL
        elif kind == P_NUMERIC:
            out[name] = NUMERIC
        else:
            out[name] = None
    return out


def _missing(
    ref_missing: int, ref_rows: int, cur_missing: int, cur_rows: int, t: DriftThresholds
) -> tuple[float, float, bool]:
    before = ref_missing / ref_rows if ref_rows else 0.0
    after = cur_missing / cur_rows if cur_rows else 0.0
    breached = (
        abs(after - before) >= t.missing
        and stats.two_proportions(ref_missing, ref_rows, cur_missing, cur_rows) < t.alpha
    )
    return before, after, breached


def _numeric(
    name: str, ref: NumericReference, series: pl.Series, t: DriftThresholds, with_wasserstein: bool
) -> FeatureDrift:
    values = finite_sorted(series)
    if ref.values is not None:
        d, p = stats.ks_2samp(ref.values, values)
    else:
        d, p = stats.ks_against_cdf(ref.points, ref.levels, values, ref.rows - ref.missing)
    shares = stats.bin_shares(values, ref.edges)
    psi = stats.psi(ref.shares, shares) if values.size else float("nan")
    w = None
    if with_wasserstein and ref.values is not None and ref.std > 0:
        w = stats.wasserstein(ref.values, values) / ref.std
    before, after, missing_breached = _missing(
        ref.missing, ref.rows, series.len() - values.size, series.len(), t
    )
    significant = p < t.alpha
    breached = [
        check
        for check, hit in (
            ("ks", significant and d >= t.ks),
            ("psi", significant and psi >= t.psi),
            ("wasserstein", significant and w is not None and w >= t.wasserstein),
            ("missing", missing_breached),
        )
        if hit
    ]
    edges = [f"{e:.3g}" for e in ref.edges]  # bin i holds values up to edges[i]
    bins = [f"<= {e}" for e in edges] + [f"> {edges[-1]}"] if edges else ["all"]
    return FeatureDrift(
        name=name,
        kind=NUMERIC,
        rows_reference=ref.rows,
        rows_current=series.len(),
        missing_reference=before,
        missing_current=after,
        test="ks",
        statistic=d,
        p_value=p,
        effect="ks",
        effect_size=d,
        psi=psi,
        wasserstein=w,
        breached=breached,
        bins=bins,
        reference_shares=[float(x) for x in ref.shares],
        current_shares=[float(x) for x in shares],
    )


def _categorical(
    name: str, ref: CategoricalReference, series: pl.Series, t: DriftThresholds
) -> FeatureDrift:
    import numpy as np

    counts = category_counts(series)
    categories = list(ref.counts) + [c for c in counts if c not in ref.counts]
    ref_counts = np.array([ref.counts.get(c, 0.0) for c in categories])
    cur_counts = np.array([counts.get(c, 0.0) for c in categories])
    ref_total, cur_total = ref_counts.sum(), cur_counts.sum()
    ref_shares = ref_counts / ref_total if ref_total else ref_counts
    cur_shares = cur_counts / cur_total if cur_total else cur_counts
    chi2, p = stats.chi2_homogeneity(ref_counts, cur_counts)
    js = stats.jensen_shannon(ref_shares, cur_shares) if cur_total and ref_total else float("nan")
    psi = stats.psi(ref_shares, cur_shares) if cur_total else float("nan")
    new_share = None
    if ref.complete and cur_total:
        new_share = float(sum(v for c, v in counts.items() if c not in ref.counts) / cur_total)
    before, after, missing_breached = _missing(
        ref.missing, ref.rows, series.null_count(), series.len(), t
    )
    significant = p < t.alpha
    breached = [
        check
        for check, hit in (
            ("js", significant and js >= t.js),
            ("psi", significant and psi >= t.psi),
            ("new_categories", new_share is not None and new_share >= t.new_categories),
            ("missing", missing_breached),
        )
        if hit
    ]
    shown = categories[:PLOTTED_CATEGORIES]
    bins, r_sh, c_sh = list(shown), list(ref_shares[: len(shown)]), list(cur_shares[: len(shown)])
    if len(categories) > len(shown):
        bins.append("(other)")
        r_sh.append(float(ref_shares[len(shown) :].sum()))
        c_sh.append(float(cur_shares[len(shown) :].sum()))
    return FeatureDrift(
        name=name,
        kind=CATEGORICAL,
        rows_reference=ref.rows,
        rows_current=series.len(),
        missing_reference=before,
        missing_current=after,
        test="chi2",
        statistic=chi2,
        p_value=p,
        effect="js",
        effect_size=js,
        psi=psi,
        js=js,
        new_category_share=new_share,
        breached=breached,
        bins=bins,
        reference_shares=[float(x) for x in r_sh],
        current_shares=[float(x) for x in c_sh],
    )

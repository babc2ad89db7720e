"""Which columns a model reads, whether a table can train one, and its signature.

:func:`resolve_features` picks the features (model order) and the categorical
ones from a :class:`~conveyor.ml.train.TrainConfig`; :func:`check_training_data`
refuses degenerate data before LightGBM runs; :func:`build_signature` records
the features as a :class:`~conveyor.models.signature.Signature` (types in the one
dtype vocabulary, nullability, sorted category maps).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from conveyor.checks import Finding, Severity
from conveyor.ml.errors import DegenerateDataError
from conveyor.models.signature import FeatureSpec, Signature

if TYPE_CHECKING:
    import polars as pl

    from conveyor.ml.train import TrainConfig


def resolve_features(frame: pl.DataFrame, config: TrainConfig) -> tuple[list[str], set[str]]:
    """Feature names (model order) and the categorical subset, per ``config``."""
    from conveyor.ml.profile import BOOLEAN, column_kind
    from conveyor.ml.profile import CATEGORICAL as CAT_KIND
    from conveyor.ml.profile import NUMERIC as NUM_KIND

    skip = {config.label, *config.exclude, *config.key}
    if config.features is None:
        features = [
            c
            for c, t in frame.schema.items()
            if c not in skip and column_kind(t) in (NUM_KIND, BOOLEAN, CAT_KIND)
        ]
    else:
        features = list(config.features)
        missing = [f for f in features if f not in frame.columns]
        if missing:
            raise DegenerateDataError(
                f"feature column(s) {missing} are not in the table",
                hint=f"columns are: {', '.join(frame.columns)}",
            )
        if config.label in features:
            raise DegenerateDataError(
                f"the label {config.label!r} is listed as a feature", hint="remove it from features"
            )
    if len(set(features)) != len(features):
        raise DegenerateDataError("a feature is listed twice", hint="list each feature once")
    if not features:
        raise DegenerateDataError(
            "no feature columns to train on", hint="list features in the train config"
        )
    if config.categorical is None:
        categorical = {f for f in features if column_kind(frame.schema[f]) == CAT_KIND}
    else:
        unknown = set(config.categorical) - set(features)
        if unknown:
            raise DegenerateDataError(
                f"categorical feature(s) {sorted(unknown)} are not features",
                hint="list them in features too",
            )
        categorical = set(config.categorical)
    for f in features:
        kind = column_kind(frame.schema[f])
        if f not in categorical and kind not in (NUM_KIND, BOOLEAN):
            raise DegenerateDataError(
                f"feature {f!r} has type {frame.schema[f]}, which is neither numeric nor "
                "categorical",
                hint="exclude it, or list it as categorical",
            )
    return features, categorical


def check_training_data(
    frame: pl.DataFrame, config: TrainConfig, *, part: str = "training", full: bool = True
) -> None:
    """Raise :class:`DegenerateDataError` listing everything that makes ``frame`` unusable.

    Checks (all before LightGBM is called): rows, the label (present, no
    null/NaN/inf, 0/1 with both classes for ``binary``, not constant for
    ``regression``), and with ``full``: all-null or constant features, infinite
    feature values and duplicate keys.
    """
    import polars as pl

    problems: list[Finding] = []

    def problem(check: str, message: str, subject: str | None = None, **details: Any) -> None:
        problems.append(
            Finding(
                check=check,
                message=message,
                severity=Severity.ERROR,
                subject=subject,
                details=details,
            )
        )

    label = config.label
    if frame.height == 0:
        problem("data.empty", f"the {part} data has 0 rows")
    if label not in frame.columns:
        problem("label.absent", f"label column {label!r} is not in the {part} data", label)
    elif frame.height:
        y = frame.get_column(label)
        if not (y.dtype.is_numeric() or y.dtype == pl.Boolean):
            problem(
                "label.type",
                f"label {label!r} has type {y.dtype}; it must be numeric or boolean",
                label,
            )
        else:
            yf = y.cast(pl.Float64)
            bad = (
                int(yf.is_null().sum())
                + int(yf.is_nan().sum() or 0)
                + int(yf.is_infinite().sum() or 0)
            )
            if bad:
                problem(
                    "label.missing",
                    f"label {label!r} has {bad} null, NaN or infinite value(s)",
                    label,
                    count=bad,
                )
            finite = yf.filter(yf.is_finite())
            values = sorted(finite.unique().to_list())
            if config.objective == "binary":
                if not set(values) <= {0.0, 1.0}:
                    shown = values[:5]
                    problem(
                        "label.not_binary",
                        f"label {label!r} must be 0/1 for a binary "
                        f"objective; it has values {shown}",
                        label,
                    )
                elif len(values) < 2 and full:
                    problem(
                        "label.one_class",
                        f"label {label!r} has a single class ({values[0]:g}) in the {part} data"
                        if values
                        else f"label {label!r} has no valid value",
                        label,
                    )
            elif len(values) < 2 and full:
                problem("label.constant", f"label {label!r} is constant in the {part} data", label)

    if full and frame.height:
        features, _categorical = resolve_features(frame, config)
        schema = frame.schema
        floats = [f for f in features if schema[f].is_float()]
        # a numeric feature is constant when its smallest and largest values (NaN left
        # out) are equal: two reductions instead of hashing every value (n_unique)
        ordered = [f for f in features if schema[f].is_numeric() or schema[f] == pl.Boolean]
        hashed = [f for f in features if f not in ordered]

        def valued(f: str) -> pl.Expr:
            return pl.col(f).fill_nan(None) if f in floats else pl.col(f)

        stats = frame.select(
            *[pl.col(f).null_count().alias(f"{f}:nulls") for f in features],
            *[valued(f).min().alias(f"{f}:min") for f in ordered],
            *[valued(f).max().alias(f"{f}:max") for f in ordered],
            *[pl.col(f).drop_nulls().n_unique().alias(f"{f}:unique") for f in hashed],
            *[pl.col(f).is_nan().sum().alias(f"{f}:nan") for f in floats],
            *[pl.col(f).is_infinite().sum().alias(f"{f}:inf") for f in floats],
        ).row(0, named=True)

        def constant(f: str) -> bool:
            if f in hashed:
                return stats[f"{f}:unique"] <= 1
            return stats[f"{f}:min"] == stats[f"{f}:max"]

        for f in features:
            nulls = stats[f"{f}:nulls"] + (stats.get(f"{f}:nan") or 0)
            if nulls == frame.height:
                problem("feature.all_null", f"feature {f!r} is null for every row", f)
            elif constant(f):
                problem("feature.constant", f"feature {f!r} is constant", f)
            if stats.get(f"{f}:inf"):
                problem(
                    "feature.infinite",
                    f"feature {f!r} has {stats[f'{f}:inf']} infinite value(s)",
                    f,
                    count=stats[f"{f}:inf"],
                )
        if config.key:
            absent = [k for k in config.key if k not in frame.columns]
            if absent:
                problem("key.absent", f"key column(s) {absent} are not in the {part} data")
            else:
                dupes = frame.height - frame.select(config.key).n_unique()
                if dupes:
                    problem(
                        "key.duplicate",
                        f"{dupes} row(s) repeat a key ({', '.join(config.key)}) in the {part} data",
                        ",".join(config.key),
                        count=dupes,
                    )
    if problems:
        listing = "; ".join(p.message for p in problems)
        raise DegenerateDataError(
            f"the {part} data cannot train a model: {listing}",
            hint="fix the data (or drop/exclude the offending columns) before training",
            findings=problems,
        )


def build_signature(
    frame: pl.DataFrame, config: TrainConfig, others: Sequence[pl.DataFrame] = ()
) -> Signature:
    """The signature of a model trained on ``frame`` with ``config`` (sorted category maps).

    A feature is nullable when it has missing values in ``frame`` or in any of
    ``others`` (e.g. the validation set), or is listed in ``config.nullable``.
    """
    import polars as pl

    from conveyor.models.dtypes import from_polars

    features, categorical = resolve_features(frame, config)

    def missing_counts(table: pl.DataFrame) -> dict[str, int]:
        present = [f for f in features if f in table.columns]
        return (
            table.select(
                *[
                    (
                        pl.col(f).null_count()
                        + (pl.col(f).is_nan().sum() if table.schema[f].is_float() else 0)
                    ).alias(f)
                    for f in present
                ]
            ).row(0, named=True)
            if present
            else {}
        )

    counts = [missing_counts(t) for t in (frame, *others)]
    specs = []
    for f in features:
        dtype = from_polars(frame.schema[f])
        if dtype is None:
            raise DegenerateDataError(
                f"feature {f!r} has type {frame.schema[f]}, which a model signature cannot hold",
                hint="cast it to float64 (or another type of docs/ml.md's vocabulary)",
            )
        cats = None
        if f in categorical:
            cats = frame.get_column(f).drop_nulls().cast(pl.String).unique().sort().to_list()
        specs.append(
            FeatureSpec(
                name=f,
                dtype=dtype,
                categories=cats,
                nullable=any(c.get(f) for c in counts) or f in config.nullable,
            )
        )
    return Signature(features=specs, label=config.label, objective=config.objective)

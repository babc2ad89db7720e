"""A schema + statistics profile of a reference batch, serializable to JSON.

The profile is what new batches are checked against (:mod:`conveyor.ml.validation`)
and what monitoring compares live inputs with.  Statistics of numeric columns
are over finite values; NaN counts as missing (with nulls) and infinities are
counted on their own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from conveyor.convert import to_tuple
from conveyor.errors import ValidationError

if TYPE_CHECKING:
    import polars as pl

PROFILE_VERSION = 1
#: Quantiles recorded for every numeric column (keys in JSON: "0.01", ...).
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)

#: Column kinds.
NUMERIC, CATEGORICAL, BOOLEAN, TEMPORAL, OTHER = (
    "numeric",
    "categorical",
    "boolean",
    "temporal",
    "other",
)


def _finite_or_none(value: Any) -> float | None:
    """``float(value)``, or None for a missing or non-finite value (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@frozen(kw_only=True)
class NumericStats:
    """Statistics of a numeric column's finite values.

    Attributes:
        min, max, mean, std: over finite values; None when there are none.
        quantiles: quantile (as a string such as ``"0.25"``) -> value.
    """

    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    quantiles: dict[str, float | None] = field(factory=dict)


@frozen(kw_only=True)
class CategoricalStats:
    """Category frequencies of a categorical column (over its non-null values).

    Attributes:
        frequencies: category -> share of non-null rows, most frequent first.
        distinct: number of distinct non-null values.
        truncated: True when more than ``max_categories`` values were seen and
            only the most frequent ones were kept (unseen checks are then skipped).
    """

    frequencies: dict[str, float] = field(factory=dict)
    distinct: int = 0
    truncated: bool = False


@frozen(kw_only=True)
class ColumnProfile:
    """Schema and statistics of one column.

    Attributes:
        name: column name.
        dtype: the polars dtype as a string (``"Float64"``, ``"String"``, ...).
        kind: ``numeric``, ``categorical``, ``boolean``, ``temporal`` or ``other``.
        nullable: whether the reference batch had any missing value (null or NaN).
        null_rate: share of rows that are null (NaN not included).
        nan_rate: share of rows that are NaN (float columns only).
        inf_count: number of +-inf values (float columns only).
        numeric: statistics when ``kind`` is numeric (or temporal: as epoch microseconds).
        categorical: frequencies when ``kind`` is categorical or boolean.
    """

    name: str
    dtype: str
    kind: str
    nullable: bool
    null_rate: float
    nan_rate: float = 0.0
    inf_count: int = 0
    numeric: NumericStats | None = None
    categorical: CategoricalStats | None = None

    @property
    def missing_rate(self) -> float:
        """Share of rows that are null or NaN."""
        return self.null_rate + self.nan_rate


@frozen(kw_only=True)
class DataProfile:
    """The profile of a reference batch.

    Attributes:
        columns: one profile per column, in table order.
        row_count: rows in the reference batch.
        label: name of the label column, if any.
        label_kind: ``classification`` (distribution over classes) or ``regression``.
        label_distribution: class (as a string) -> share, for classification.
        version: format version of the serialized profile.
    """

    columns: tuple[ColumnProfile, ...] = field(converter=to_tuple)
    row_count: int
    label: str | None = None
    label_kind: str | None = None
    label_distribution: dict[str, float] | None = None
    version: int = PROFILE_VERSION

    def column(self, name: str) -> ColumnProfile:
        """The profile of column ``name`` (KeyError when absent)."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (no NaN anywhere)."""
        import attrs

        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataProfile:
        """Rebuild a profile from :meth:`to_dict` output."""
        try:
            if data.get("version") != PROFILE_VERSION:
                raise ValueError(f"unsupported profile version {data.get('version')!r}")
            columns = []
            for c in data["columns"]:
                c = dict(c)
                if c.get("numeric") is not None:
                    c["numeric"] = NumericStats(**c["numeric"])
                if c.get("categorical") is not None:
                    c["categorical"] = CategoricalStats(**c["categorical"])
                columns.append(ColumnProfile(**c))
            rest = {k: v for k, v in data.items() if k != "columns"}
            return cls(columns=columns, **rest)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(
                f"not a valid data profile: {exc}",
                hint="profiles are written by DataProfile.to_json()",
            ) from None

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), stable for fingerprinting."""
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> DataProfile:
        """Parse :meth:`to_json` output."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValidationError(f"data profile is not valid JSON: {exc}") from None
        return cls.from_dict(data)


def column_kind(dtype: pl.DataType) -> str:
    """The kind of a polars dtype: numeric, categorical, boolean, temporal or other."""
    import polars as pl

    if dtype.is_numeric():
        return NUMERIC
    if dtype == pl.Boolean:
        return BOOLEAN
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum | pl.Categorical):
        return CATEGORICAL
    if dtype.is_temporal():
        return TEMPORAL
    return OTHER


def infer_profile(
    frame: pl.DataFrame,
    *,
    label: str | None = None,
    label_kind: str | None = None,
    categorical: Sequence[str] = (),
    max_categories: int = 100,
) -> DataProfile:
    """Infer the schema + statistics profile of ``frame`` (the reference batch).

    ``categorical`` names numeric columns to profile as categories as well as
    string ones.  ``label_kind`` defaults to ``classification`` when the label
    has at most 20 distinct values and is not a float column.
    """
    import polars as pl

    if label is not None and label not in frame.columns:
        raise ValidationError(
            f"label column {label!r} is not in the reference batch",
            hint=f"columns are: {', '.join(frame.columns)}",
        )
    n = frame.height
    kinds = {
        name: CATEGORICAL if name in categorical else column_kind(dtype)
        for name, dtype in frame.schema.items()
    }
    stats = _numeric_stats(frame, [c for c, k in kinds.items() if k in (NUMERIC, TEMPORAL)])
    columns = [
        _profile_column(frame.get_column(name), kind, n, max_categories, stats.get(name))
        for name, kind in kinds.items()
    ]

    distribution = None
    if label is not None:
        y = frame.get_column(label)
        if label_kind is None:
            is_float = y.dtype.is_float()
            label_kind = "classification" if not is_float and y.n_unique() <= 20 else "regression"
        if label_kind == "classification":
            counts = y.drop_nulls().cast(pl.String).value_counts(sort=True)
            total = max(int(counts["count"].sum()), 1)
            distribution = {str(v): c / total for v, c in counts.iter_rows()}
    return DataProfile(
        columns=columns,
        row_count=n,
        label=label,
        label_kind=label_kind if label is not None else None,
        label_distribution=distribution,
    )


def _numeric_stats(frame: pl.DataFrame, names: list[str]) -> dict[str, NumericStats]:
    """Statistics of the finite values of each numeric/temporal column."""
    import numpy as np
    import polars as pl

    out = {}
    for name in names:
        s = frame.get_column(name)
        if s.dtype.is_temporal():
            s = s.cast(pl.Int64)
        values = s.cast(pl.Float64).to_numpy()  # nulls become NaN
        values = values[np.isfinite(values)]
        if values.size == 0:
            out[name] = NumericStats(
                min=None, max=None, mean=None, std=None, quantiles={str(q): None for q in QUANTILES}
            )
            continue
        quantiles = np.quantile(values, QUANTILES)
        out[name] = NumericStats(
            min=_finite_or_none(quantiles[0]),
            max=_finite_or_none(quantiles[-1]),
            mean=_finite_or_none(values.mean()),
            std=_finite_or_none(values.std(ddof=1)) if values.size > 1 else None,
            quantiles={
                str(q): _finite_or_none(v) for q, v in zip(QUANTILES, quantiles, strict=True)
            },
        )
    return out


def _profile_column(
    s: pl.Series, kind: str, n: int, max_categories: int, numeric: NumericStats | None
) -> ColumnProfile:
    import polars as pl

    nulls = s.null_count()
    nan = inf = 0
    categorical = None
    if s.dtype.is_float():
        nan = int(s.is_nan().sum() or 0)
        inf = int(s.is_infinite().sum() or 0)
    if kind in (CATEGORICAL, BOOLEAN):
        counts = s.drop_nulls().cast(pl.String).value_counts(sort=True)
        total = max(int(counts["count"].sum()), 1)
        rows = counts.rows()
        categorical = CategoricalStats(
            frequencies={str(v): c / total for v, c in rows[:max_categories]},
            distinct=len(rows),
            truncated=len(rows) > max_categories,
        )
    return ColumnProfile(
        name=s.name,
        dtype=str(s.dtype),
        kind=kind,
        nullable=(nulls + nan) > 0,
        null_rate=nulls / n if n else 0.0,
        nan_rate=nan / n if n else 0.0,
        inf_count=inf,
        numeric=numeric,
        categorical=categorical,
    )

"""Prediction with the signature enforced, and the feature matrix training shares.

A :class:`Predictor` is a signature compiled once (per model load): per feature,
the input types it accepts, its category map and the polars expressions that
check and encode it.  Each call then costs one aggregate pass over the input
(missing values, infinities) and one select that builds the matrix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from conveyor.checks import Finding
from conveyor.models.dtypes import NUMERIC, STRINGS, from_polars
from conveyor.models.errors import ModelLoadError, PredictionInputError
from conveyor.models.signature import FeatureSpec, Signature

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from conveyor.models.model import TrainedModel

_HINT = (
    "send every feature by name with the trained types; no +-inf, and missing values "
    "only for nullable features (train with train.nullable = [...] to allow them)"
)


def _accepted(spec: FeatureSpec) -> frozenset[str]:
    """Input types a feature accepts, by vocabulary name."""
    if spec.categories is None:
        return frozenset(NUMERIC)
    if spec.is_string:
        return frozenset(STRINGS)
    return frozenset(NUMERIC | STRINGS)  # integer/boolean codes, or their strings


def _finding(check: str, message: str, subject: str, **details: Any) -> Finding:
    return Finding(check=check, message=message, subject=subject, details=details)


# The refusals of both validation paths (polars here, plain Python in
# :mod:`conveyor.models.smallbatch`), so their messages cannot drift apart.
def missing_column(name: str) -> Finding:
    return _finding("input.missing_column", f"feature column {name!r} is missing", name)


def missing_values(name: str, count: int) -> Finding:
    return _finding(
        "input.null",
        f"feature {name!r} has {count} missing value(s) but the "
        "model was trained without missing values for it",
        name,
    )


def wrong_type(spec: FeatureSpec, observed: str) -> Finding:
    """``observed`` is the input column's polars type as text (``Int64``, ``String``)."""
    return _finding(
        "input.type",
        f"feature {spec.name!r} has type {observed}; the model expects {spec.dtype}",
        spec.name,
        expected=spec.dtype,
        observed=observed,
    )


def infinite_values(name: str, count: int) -> Finding:
    return _finding("input.infinite", f"feature {name!r} has {count} infinite value(s)", name)


def input_error(problems: list[Finding]) -> PredictionInputError:
    return PredictionInputError(
        "input does not match the model signature: " + "; ".join(p.message for p in problems),
        hint=_HINT,
        findings=problems,
    )


def _encode(spec: FeatureSpec) -> pl.Expr:
    """The float64 column the booster reads for ``spec`` (categories -> codes; unseen
    and null -> NaN, LightGBM's missing value)."""
    import polars as pl

    col = pl.col(spec.name)
    if spec.categories is not None:
        expr = col.cast(pl.String).replace_strict(
            spec.category_map(), default=None, return_dtype=pl.Float64
        )
    else:
        expr = col.cast(pl.Float64)
    return expr.alias(spec.name)


def feature_matrix(frame: pl.DataFrame, signature: Signature) -> np.ndarray:
    """The float64 matrix the booster sees: columns by name in signature order,
    categories mapped to codes (unseen and null -> NaN).  Training uses it too, so
    training and prediction encode the same way."""
    return frame.select([_encode(f) for f in signature.features]).to_numpy()


class Predictor:
    """A signature compiled for prediction: validates and encodes input tables."""

    def __init__(self, signature: Signature) -> None:
        import polars as pl

        for spec in signature.features:
            if spec.categories is None and spec.dtype not in NUMERIC:
                raise ModelLoadError(
                    f"feature {spec.name!r} has type {spec.dtype} and no "
                    "categories; a LightGBM model reads numbers, booleans and "
                    "categories",
                    hint="give its categories, or cast it",
                )
        self.signature = signature
        self.names = signature.names
        self._specs = signature.features
        self._accepts = {f.name: _accepted(f) for f in self._specs}
        self._encode = [_encode(f) for f in self._specs]
        self._null = pl.Null
        self._small: Any = None
        # per feature: (missing-count expr for non-float input, for float input, inf expr)
        self._counts: dict[str, tuple[pl.Expr | None, pl.Expr | None, pl.Expr]] = {}
        for f in self._specs:
            col = pl.col(f.name)
            plain = None if f.nullable else col.null_count().alias(f"{f.name}:missing")
            floats = (
                None
                if f.nullable
                else (col.null_count() + col.is_nan().sum()).alias(f"{f.name}:missing")
            )
            self._counts[f.name] = (plain, floats, col.is_infinite().sum().alias(f"{f.name}:inf"))

    def validate(self, frame: pl.DataFrame) -> None:
        """Raise :class:`PredictionInputError` naming every field that does not fit."""
        problems: list[Finding] = []
        schema = frame.schema
        exprs = []
        for spec in self._specs:
            name = spec.name
            dtype = schema.get(name)
            if dtype is None:
                problems.append(missing_column(name))
                continue
            if dtype == self._null:  # every value missing (e.g. all null in JSON)
                if not spec.nullable:
                    problems.append(missing_values(name, frame.height))
                continue
            observed = from_polars(dtype)
            if observed not in self._accepts[name]:
                problems.append(wrong_type(spec, str(dtype)))
                continue
            plain, floats, inf = self._counts[name]
            if observed in ("float32", "float64"):
                exprs.append(inf)
                if floats is not None:
                    exprs.append(floats)
            elif plain is not None:
                exprs.append(plain)
        counts = frame.select(exprs).row(0, named=True) if exprs and frame.height else {}
        for spec in self._specs:
            missing = counts.get(f"{spec.name}:missing")
            if missing:
                problems.append(missing_values(spec.name, missing))
            infinite = counts.get(f"{spec.name}:inf")
            if infinite:
                problems.append(infinite_values(spec.name, infinite))
        if problems:
            raise input_error(problems)

    def small_matrix(self, columns: Mapping[str, Any]) -> np.ndarray | None:
        """:meth:`matrix` of a few plain columns (``{name: list or 1-d array}``) without
        polars: the same checks and errors, or ``None`` when the input's types need
        polars to tell (see :mod:`conveyor.models.smallbatch`)."""
        if self._small is None:
            from conveyor.models.smallbatch import SmallBatch

            self._small = SmallBatch(self.signature)
        return self._small.matrix(columns)

    def matrix(self, frame: pl.DataFrame) -> np.ndarray:
        """Validate ``frame`` and return the float64 matrix in booster order."""
        self.validate(frame)
        return frame.select(self._encode).to_numpy()


def _as_frame(frame: Any) -> pl.DataFrame:
    import polars as pl

    if isinstance(frame, pl.DataFrame):
        return frame
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        pa = None
    if pa is not None and isinstance(frame, pa.Table | pa.RecordBatch):
        return pl.DataFrame(frame)
    raise PredictionInputError(
        f"predict takes a polars DataFrame or an Arrow table, not {type(frame).__name__}",
        hint=_HINT,
    )


def predict(model: TrainedModel, frame: pl.DataFrame, *, raw_score: bool = False) -> np.ndarray:
    """Predict ``frame`` (probabilities for binary, values for regression).

    Columns are matched by name and put in booster order (extra columns ignored),
    categories mapped through the stored category maps (unseen -> missing); types,
    nulls and +-inf are checked first (:class:`PredictionInputError` names every
    offending field).
    """
    import numpy as np

    frame = _as_frame(frame)
    x = model.predictor.matrix(frame)
    if frame.height == 0:
        return np.empty(0, dtype=np.float64)
    return np.asarray(model.booster.predict(x, raw_score=raw_score))  # no copy: an ndarray

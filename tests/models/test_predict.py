"""predict() with the signature enforced: by name, typed, every error names its field."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from conveyor.models import PredictionInputError, predict
from conveyor.models.dtypes import NUMERIC


def _raw_matrix(model, frame: pl.DataFrame) -> np.ndarray:
    """The booster's input built by hand: signature order, categories by their map."""
    columns = []
    for spec in model.signature.features:
        values = frame.get_column(spec.name).to_list()
        if spec.categories is not None:
            codes = spec.category_map()
            values = [np.nan if v is None else codes.get(str(v), np.nan) for v in values]
        else:
            values = [np.nan if v is None else float(v) for v in values]
        columns.append(np.asarray(values, dtype=np.float64))
    return np.column_stack(columns)


def test_reordered_columns_predict_what_the_booster_predicts_in_order(model, split):
    holdout = split.holdout
    expected = model.booster.predict(_raw_matrix(model, holdout))
    rng = np.random.default_rng(1)
    shuffled = holdout.select(list(rng.permutation(holdout.columns)))
    assert shuffled.columns != list(model.signature.names)
    assert np.array_equal(predict(model, shuffled), expected)
    assert np.array_equal(predict(model, shuffled.to_arrow()), expected)  # Arrow in, too
    raw = model.booster.predict(_raw_matrix(model, holdout), raw_score=True)
    assert np.array_equal(predict(model, holdout, raw_score=True), raw)


def test_the_signature_is_compiled_once_per_model(model):
    assert model.predictor is model.predictor
    assert model.predictor.names == model.signature.names


def test_int_bool_and_string_features_keep_their_vocabulary_types(model):
    dtypes = {f.name: f.dtype for f in model.signature.features}
    assert dtypes["n_orders"] == "int32" and dtypes["flag"] == "bool"
    assert dtypes["region"] == "string" and dtypes["f00"] == "float64"
    assert {dtypes[f] for f in ("n_orders", "flag", "f00")} <= NUMERIC


def _nth(column: str, value, n: int = 2) -> pl.Expr:
    return pl.when(pl.int_range(pl.len()) == n).then(value).otherwise(pl.col(column)).alias(column)


@pytest.mark.parametrize(
    ("field", "mutate", "check"),
    [
        ("f01", lambda f: f.drop("f01"), "input.missing_column"),
        ("f02", lambda f: f.with_columns(pl.col("f02").cast(pl.String)), "input.type"),
        ("region", lambda f: f.with_columns(pl.col("f00").alias("region")), "input.type"),
        ("n_orders", lambda f: f.with_columns(pl.col("n_orders").cast(pl.Date)), "input.type"),
        ("f04", lambda f: f.with_columns(_nth("f04", float("inf"))), "input.infinite"),
        ("f05", lambda f: f.with_columns(_nth("f05", float("nan"))), "input.null"),
        ("n_orders", lambda f: f.with_columns(_nth("n_orders", None)), "input.null"),
        ("flag", lambda f: f.with_columns(pl.lit(None).alias("flag")), "input.null"),
        ("device", lambda f: f.with_columns(pl.lit(None, pl.String).alias("device")), "input.null"),
    ],
)
def test_each_validation_error_names_the_field(model, split, field, mutate, check):
    rows = split.holdout.head(10)
    with pytest.raises(PredictionInputError, match=f"'{field}'") as info:
        predict(model, mutate(rows))
    assert [(f.subject, f.check) for f in info.value.findings] == [(field, check)]
    assert info.value.hint


def test_every_offending_field_is_reported_at_once(model, split):
    rows = split.holdout.head(10).drop("f01").with_columns(_nth("f04", float("-inf")))
    with pytest.raises(PredictionInputError) as info:
        predict(model, rows)
    assert {f.subject for f in info.value.findings} == {"f01", "f04"}


def test_missing_values_are_allowed_where_the_feature_may_be_missing(model, split):
    nullable = [f.name for f in model.signature.features if f.nullable]
    assert nullable  # f03, f07 and f15 are missing at training
    rows = split.holdout.head(10).with_columns(
        *[pl.lit(None).alias(name) for name in nullable],  # a Null-typed column too
        pl.lit("atlantis").alias("region"),
    )  # unseen category: missing
    assert predict(model, rows).shape == (10,)
    assert predict(model, split.holdout.head(0)).shape == (0,)

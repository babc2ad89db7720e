"""The synthetic data generator: deterministic, well-formed, and its shifts bite."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from conveyor.errors import ConveyorError
from conveyor.ml.data import (
    CATEGORICAL_FEATURES,
    KEY,
    NUMERIC_FEATURES,
    UNSEEN_CATEGORIES,
    Shift,
    generate,
)
from conveyor.ml.evaluate import evaluate_model


def test_same_seed_same_frame_other_seed_other_frame():
    a = generate(2000, seed=3)
    assert_frame_equal(a, generate(2000, seed=3))
    assert not a.equals(generate(2000, seed=4))


def test_shape_types_keys_and_time_span():
    start = datetime(2024, 3, 1)
    df = generate(3000, days=10, start=start, seed=1)
    assert df.height == 3000
    assert len(NUMERIC_FEATURES) == 20 and len(CATEGORICAL_FEATURES) == 3
    assert all(df.schema[c] == pl.Float64 for c in NUMERIC_FEATURES)
    assert all(df.schema[c] == pl.String for c in CATEGORICAL_FEATURES)
    assert df.schema["label"] == pl.Int64
    ts = df["event_timestamp"]
    assert ts.is_sorted() and ts.n_unique() == df.height
    assert ts.min() >= start and ts.max() < start + timedelta(days=10)
    assert df.select(KEY).n_unique() == df.height
    assert set(df["label"].unique()) == {0, 1}
    assert 0.2 < df["label"].mean() < 0.7
    assert df["f03"].null_count() > 0 and df["f00"].null_count() == 0


def test_shift_moves_features_and_adds_unseen_categories_from_start_day():
    start = datetime(2024, 1, 1)
    shift = Shift(features=("f01", "region"), magnitude=3.0, unseen_rate=0.2, start_day=5)
    base = generate(4000, days=10, seed=2)
    moved = generate(4000, days=10, seed=2, shift=shift)
    late = pl.col("event_timestamp") >= start + timedelta(days=5)
    before, after = moved.filter(~late), moved.filter(late)
    assert UNSEEN_CATEGORIES["region"] not in before["region"].to_list()
    assert (after["region"] == UNSEEN_CATEGORIES["region"]).mean() > 0.1
    std = base["f01"].std()
    shift_in_std = (after["f01"].mean() - base.filter(late)["f01"].mean()) / std
    assert 2.5 < shift_in_std < 3.5
    assert abs(before["f01"].mean() - base.filter(~late)["f01"].mean()) < 0.2 * std


def test_unknown_shift_feature_is_an_error():
    with pytest.raises(ConveyorError, match="unknown feature"):
        Shift(features=("nope",))


def test_concept_drift_makes_an_old_model_worse(model):
    fresh = generate(3000, seed=11)
    drifted = generate(3000, seed=11, shift=Shift(concept=0.7))
    auc_fresh = evaluate_model(model, fresh).overall["auc"]
    auc_drifted = evaluate_model(model, drifted).overall["auc"]
    assert auc_fresh > 0.75
    assert auc_drifted < auc_fresh - 0.15


def test_covariate_shift_with_unseen_categories_also_hurts(model):
    fresh = generate(3000, seed=12)
    shifted = generate(3000, seed=12, shift=Shift(features=("region", "plan"), unseen_rate=1.0))
    assert (
        evaluate_model(model, shifted).overall["logloss"]
        > evaluate_model(model, fresh).overall["logloss"]
    )

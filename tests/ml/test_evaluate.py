"""Metrics against hand-computed values, and per-slice evaluation."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest

from conveyor.ml.errors import DegenerateDataError
from conveyor.ml.evaluate import (
    Evaluation,
    accuracy,
    average_ranks,
    compute_metrics,
    evaluate,
    evaluate_model,
    log_loss,
    mae,
    rmse,
    roc_auc,
)


def test_average_ranks_share_ties():
    assert average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]


@pytest.mark.parametrize(
    ("y", "s", "expected"),
    [
        ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75),  # 3 of 4 pairs ordered
        ([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9], 0.875),  # one tied pair counts 1/2
        ([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], 0.5),  # all tied
        ([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], 0.0),  # perfectly reversed
        ([0, 1], [0.2, 0.9], 1.0),
    ],
)
def test_auc_hand_computed(y, s, expected):
    assert roc_auc(y, s) == pytest.approx(expected)


def test_auc_matches_pairwise_definition_on_random_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300), 1)  # many ties
    pos, neg = s[y == 1], s[y == 0]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert roc_auc(y, s) == pytest.approx(pairs / (pos.size * neg.size), abs=1e-12)


def test_auc_of_one_class_is_nan_and_none_in_metrics():
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))
    assert compute_metrics([1, 1], [0.2, 0.3])["auc"] is None


def test_logloss_accuracy_rmse_mae_hand_computed():
    assert log_loss([1, 0], [0.8, 0.4]) == pytest.approx((-math.log(0.8) - math.log(0.6)) / 2)
    assert log_loss([1], [0.0]) == pytest.approx(-math.log(1e-15))  # clipped, finite
    assert accuracy([1, 0, 1, 0], [0.9, 0.4, 0.3, 0.5]) == pytest.approx(0.5)
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)


def test_nan_predictions_are_refused():
    with pytest.raises(DegenerateDataError, match="NaN"):
        roc_auc([0, 1], [0.1, float("nan")])


def test_slices_are_metrics_of_the_slice_rows():
    frame = pl.DataFrame({"label": [0, 1, 0, 1, 1, 0], "g": ["a", "a", "a", "b", "b", None]})
    p = np.array([0.1, 0.9, 0.6, 0.3, 0.8, 0.2])
    ev = evaluate(frame, p, label="label", slice_by=["g"])
    assert ev.overall["auc"] == pytest.approx(roc_auc(frame["label"], p))
    a = ev.slice("g", "a")
    assert a.rows == 3 and a.metrics["auc"] == pytest.approx(1.0)
    assert a.metrics["accuracy"] == pytest.approx(2 / 3)
    assert ev.slice("g", "b").metrics["auc"] is None  # one class
    assert ev.slice("g", "<null>").rows == 1
    text = json.dumps(ev.to_dict(), allow_nan=False)
    assert Evaluation.from_dict(json.loads(text)) == ev


def test_regression_metrics():
    frame = pl.DataFrame({"y": [1.0, 2.0, 3.0]})
    ev = evaluate(frame, [1.0, 2.0, 5.0], label="y", objective="regression")
    assert set(ev.overall) == {"rmse", "mae"}
    assert ev.overall["mae"] == pytest.approx(2 / 3)


def test_evaluate_model_per_region(model, split):
    ev = evaluate_model(model, split.holdout, slice_by=["region", "device"])
    assert ev.rows == split.holdout.height
    assert {s.value for s in ev.slices if s.column == "region"} == set(
        split.holdout["region"].unique()
    )
    assert ev.overall["auc"] > 0.75


def test_empty_holdout_is_an_error():
    with pytest.raises(DegenerateDataError, match="0 rows"):
        evaluate(pl.DataFrame({"label": []}, schema={"label": pl.Int64}), [], label="label")


def test_an_evaluation_keeps_its_predictions_for_the_steps_after_it(model, weak_model, split):
    from attrs import evolve

    from conveyor.ml.evaluate import predictions_for
    from conveyor.models.inference import predict

    holdout = split.holdout
    ev = evaluate_model(model, holdout)
    assert ev.model_sha256 == model.sha256
    back = Evaluation.from_dict(json.loads(json.dumps(ev.to_dict(), allow_nan=False)))
    assert back == ev and np.array_equal(back.predictions, predict(model, holdout))
    assert back.predictions.dtype == np.float64
    assert predictions_for(model, holdout, back) is back.predictions  # reused, not scored
    with pytest.raises(DegenerateDataError, match="is of model"):
        predictions_for(weak_model, holdout, back)
    with pytest.raises(DegenerateDataError, match="rows"):
        predictions_for(model, holdout.head(100), back)
    flipped = holdout.with_columns((1 - pl.col("label")).alias("label"))
    with pytest.raises(DegenerateDataError, match="labels differ"):
        predictions_for(model, flipped, back)
    # an evaluation stored before predictions were kept: the model is scored
    old = evolve(back, predictions=None)
    assert np.array_equal(predictions_for(model, holdout, old), back.predictions)

"""LightGBM's single-row fast path gives exactly what ``Booster.predict`` gives."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from conveyor.models.onerow import OneRowPredictor


def _data(rows: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6))
    x[:, 5] = rng.integers(0, 8, rows)  # a categorical column
    x[rng.random(rows) < 0.1, 2] = np.nan
    return x, x[:, 0] + np.sin(x[:, 1]) + (x[:, 5] % 3) + rng.normal(scale=0.3, size=rows)


def _booster(objective: str, **extra) -> lgb.Booster:
    x, y = _data()
    params = {"objective": objective, "verbose": -1, "num_leaves": 15, "seed": 1, **extra}
    if objective == "binary":
        y = (y > np.median(y)).astype(int)
    elif objective == "multiclass":
        y = np.digitize(y, np.quantile(y, [0.33, 0.66]))
        params["num_class"] = 3
    train = lgb.Dataset(x[:400], y[:400], categorical_feature=[5])
    valid = lgb.Dataset(x[400:], y[400:], reference=train)
    booster = lgb.train(
        params,
        train,
        num_boost_round=200,
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(5, verbose=False)],
        keep_training_booster=True,  # keep the trees after the best iteration
    )
    # parsed back from its text with the trees after the best iteration kept, so the
    # predictor must stop at best_iteration as predict() does
    loaded = lgb.Booster(model_str=booster.model_to_string(num_iteration=-1))
    loaded.best_iteration = booster.best_iteration
    return loaded


@pytest.mark.parametrize(
    ("objective", "extra"),
    [("binary", {}), ("regression", {}), ("regression", {"linear_tree": True}), ("multiclass", {})],
)
def test_one_row_predictions_equal_booster_predict(objective, extra):
    booster = _booster(objective, **extra)
    assert 0 < booster.best_iteration < booster.num_trees() / booster.num_model_per_iteration()
    predictor = OneRowPredictor(booster)
    x, _ = _data(rows=300, seed=7)
    x[3, :] = np.nan  # every value missing
    x[4, 5] = 99.0  # an unseen category
    for row in x:
        row = row.reshape(1, -1)
        got, want = predictor.predict(row), booster.predict(row, num_threads=1)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_a_row_of_the_wrong_width_is_refused():
    predictor = OneRowPredictor(_booster("binary"))
    with pytest.raises(ValueError, match="one row of 6 values"):
        predictor.predict(np.zeros((1, 5)))

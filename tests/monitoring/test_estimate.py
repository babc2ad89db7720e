"""Estimated performance (CBPE) and the calibration stored at registration."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from conveyor.errors import ValidationError
from conveyor.monitoring.estimate import (
    Calibration,
    calibration_error,
    estimate_binary,
    fit_calibration,
)
from conveyor.monitoring.stats import auc_delong

from ._data import frame, probability, scores


def _labelled(
    rng: np.random.Generator, n: int, shift: float = 0.0, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    data = frame(rng, n, shift=shift).with_columns(pl.col("x0") * scale)
    p = probability(data)
    return (rng.random(n) < p).astype(float), scores(p)


def test_estimated_auc_tracks_realized_auc_under_covariate_shift() -> None:
    rng = np.random.default_rng(21)
    calibration = fit_calibration(*_labelled(rng, 20_000))
    assert calibration.reliable
    assert calibration.error < calibration.error_raw  # the raw scores were miscalibrated
    realized, estimated = [], []
    # inputs move and spread or narrow; the concept P(y | x) does not change
    for shift, scale in ((0.0, 1.0), (0.5, 1.0), (1.0, 0.6), (-0.8, 0.4), (0.3, 1.6), (-1.2, 0.8)):
        y, s = _labelled(rng, 10_000, shift, scale)
        est = estimate_binary(s, calibration)
        auc = auc_delong(y, s)[0]
        assert abs(est["auc"] - auc) <= 0.02, (shift, scale, est["auc"], auc)
        assert est["auc_low"] < est["auc"] < est["auc_high"]
        accuracy = float(((s >= 0.5) == y.astype(bool)).mean())
        assert abs(est["accuracy"] - accuracy) <= 0.02
        realized.append(auc)
        estimated.append(est["auc"])
    # the shift really changed the metric, and the estimate followed it
    assert max(realized) - min(realized) > 0.05
    assert np.corrcoef(realized, estimated)[0, 1] > 0.9


def test_a_concept_shift_is_not_visible_to_the_estimate() -> None:
    rng = np.random.default_rng(22)
    calibration = fit_calibration(*_labelled(rng, 20_000))
    y, s = _labelled(rng, 10_000)
    flipped = 1.0 - y  # the world changed its mind: only labels can show that
    assert auc_delong(flipped, s)[0] < 0.5 < estimate_binary(s, calibration)["auc"]


def test_calibration_round_trips_and_refuses_bad_input() -> None:
    rng = np.random.default_rng(23)
    calibration = fit_calibration(*_labelled(rng, 5000))
    again = Calibration.from_json(calibration.to_json())
    assert again == calibration
    grid = np.linspace(0, 1, 50)
    assert np.all(np.diff(calibration.apply(grid)) >= 0)
    with pytest.raises(ValidationError, match="both classes"):
        fit_calibration(np.ones(100), rng.random(100))
    with pytest.raises(ValidationError, match="not a stored calibration"):
        Calibration.from_json("{}")
    assert calibration_error(np.full(10, 0.5), np.array([0, 1] * 5)) == pytest.approx(0.0)
    empty = estimate_binary(np.array([]), calibration)
    assert empty["rows"] == 0 and np.isnan(empty["auc"])

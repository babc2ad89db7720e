"""Drift and skew decisions: the issue's statistical acceptance tests and the checks."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from conveyor.errors import ConveyorError
from conveyor.ml.profile import infer_profile
from conveyor.monitoring import DriftThresholds, compare

from ._data import frame

REPETITIONS = 100


def test_no_drift_at_a_million_rows_flags_at_most_five_percent_of_features() -> None:
    rng = np.random.default_rng(11)

    def draw() -> pl.DataFrame:  # float32 draws: half the time of float64 ones
        plan = frame(rng, 1_000_000, numeric=1).drop("x0")
        return plan.with_columns(
            pl.Series(f"x{i}", rng.standard_normal(1_000_000, dtype=np.float32)) for i in range(19)
        )

    report = compare(draw(), draw())
    assert len(report.features) == 20
    assert len(report.drifted_features) <= 1  # 5 % of 20
    assert not report.drifted
    # and it is the effect size that held: at this n the p-values alone would flag some
    assert all(f.effect_size < 0.01 for f in report.features)


def _detections(**shift: object) -> tuple[int, int]:
    """Detections of x0 and of plan over REPETITIONS fresh samples at n = 10k."""
    rng = np.random.default_rng(2024)
    numeric = categorical = 0
    for _ in range(REPETITIONS):
        report = compare(frame(rng, 10_000, numeric=1), frame(rng, 10_000, numeric=1, **shift))
        drifted = set(report.drifted_features)
        numeric += "x0" in drifted
        categorical += "plan" in drifted
    return numeric, categorical


def test_a_quarter_sd_mean_shift_and_a_category_swap_are_detected() -> None:
    numeric, categorical = _detections(shift=0.25, swap=True)
    assert numeric >= 95
    assert categorical >= 95


def test_the_same_distribution_at_ten_thousand_rows_is_not_flagged() -> None:
    numeric, categorical = _detections()
    assert numeric + categorical <= 0.05 * 2 * REPETITIONS


def test_small_samples_do_not_flag_noise() -> None:
    rng = np.random.default_rng(5)
    flagged = sum(len(compare(frame(rng, 60), frame(rng, 60)).drifted_features) for _ in range(50))
    # at n = 60 the effect sizes are noisy (KS ~0.15): significance keeps them quiet
    assert flagged <= 0.05 * 4 * 50


def test_skew_against_the_training_profile() -> None:
    rng = np.random.default_rng(8)
    profile = infer_profile(frame(rng, 50_000))
    assert not compare(profile, frame(rng, 20_000)).drifted
    skewed = compare(profile, frame(rng, 20_000, shift=0.25, swap=True))
    assert skewed.reference == "profile"
    assert set(skewed.drifted_features) == {"x0", "plan"}
    x0 = next(f for f in skewed.features if f.name == "x0")
    assert "ks" in x0.breached
    assert len(x0.bins) == len(x0.reference_shares) == len(x0.current_shares) == 8
    assert x0.reference_shares == pytest.approx((0.01, 0.04, 0.2, 0.25, 0.25, 0.2, 0.04, 0.01))


def test_missing_rate_and_new_category_checks() -> None:
    rng = np.random.default_rng(9)
    reference = frame(rng, 20_000)
    current = frame(rng, 20_000).with_columns(
        pl.when(pl.int_range(pl.len()) % 10 == 0).then(None).otherwise(pl.col("x1")).alias("x1"),
        pl.when(pl.int_range(pl.len()) % 40 == 0)
        .then(pl.lit("free"))
        .otherwise(pl.col("plan"))
        .alias("plan"),
    )
    report = compare(reference, current)
    by_name = {f.name: f for f in report.features}
    assert by_name["x1"].breached == ("missing",)
    assert by_name["x1"].missing_current == pytest.approx(0.1)
    assert "new_categories" in by_name["plan"].breached
    assert by_name["plan"].new_category_share == pytest.approx(0.025)
    assert {"missing.x1", "new_categories.plan"} <= set(report.breached())
    assert report.scores()["missing.x1"] == pytest.approx(0.1)


def test_wasserstein_is_optional_and_scaled_by_the_reference_sd() -> None:
    rng = np.random.default_rng(10)
    reference = frame(rng, 20_000).with_columns(pl.col("x0") * 30)
    current = frame(rng, 20_000, shift=0.5).with_columns(pl.col("x0") * 30)
    plain = compare(reference, current)
    assert all(f.wasserstein is None for f in plain.features)
    with_w = compare(reference, current, wasserstein=True)
    x0 = next(f for f in with_w.features if f.name == "x0")
    assert x0.wasserstein == pytest.approx(0.5, abs=0.05)
    assert "wasserstein" in x0.breached


def test_thresholds_decide_and_the_dataset_decision_counts_features() -> None:
    rng = np.random.default_rng(12)
    reference, current = frame(rng, 10_000), frame(rng, 10_000, shift=0.25)
    assert compare(reference, current).drifted_features == ("x0",)
    assert compare(reference, current, thresholds=DriftThresholds(ks=0.2)).drifted_features == ()
    assert not compare(reference, current, thresholds=DriftThresholds(min_features=2)).drifted


def test_columns_are_read_in_batches_with_progress() -> None:
    rng = np.random.default_rng(13)
    reference, current = frame(rng, 5000, numeric=6), frame(rng, 5000, numeric=6)
    seen: list[tuple[int, int]] = []
    whole = compare(reference, current.lazy())
    batched = compare(
        reference,
        current.lazy(),
        batch_bytes=1,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(n, 7) for n in range(1, 8)]
    assert batched.features == whole.features


def test_bad_input_is_named() -> None:
    rng = np.random.default_rng(14)
    reference = frame(rng, 100)
    with pytest.raises(ConveyorError, match="no feature nope"):
        compare(reference, reference, features=["x0", "nope"])
    with pytest.raises(ConveyorError, match="no numeric or categorical feature"):
        compare(pl.DataFrame({"when": [date(2024, 1, 1)]}), reference)

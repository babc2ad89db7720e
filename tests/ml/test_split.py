"""Time-based split: no leakage, ties stay together, degenerate splits are errors."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from conveyor.ml.data import generate
from conveyor.ml.errors import DegenerateDataError
from conveyor.ml.split import split_by_time


def test_fraction_split_has_no_leakage_and_keeps_every_row():
    frame = generate(5000, seed=5).sample(fraction=1.0, shuffle=True, seed=1)  # unordered
    s = split_by_time(frame, timestamp="event_timestamp", fractions=(0.6, 0.2, 0.2))
    ts = "event_timestamp"
    assert s.train[ts].max() < s.validation[ts].min()
    assert s.validation[ts].max() < s.holdout[ts].min()
    assert s.train.height + s.validation.height + s.holdout.height == 5000
    assert abs(s.train.height - 3000) <= 1 and abs(s.validation.height - 1000) <= 1
    assert s.summary()["train_rows"] == s.train.height


def test_rows_sharing_a_time_stamp_land_in_one_part():
    day = [datetime(2024, 1, d) for d in (1, 1, 2, 2, 2, 2, 3, 3, 4, 4)]
    frame = pl.DataFrame({"t": day, "x": range(10)})
    s = split_by_time(frame, timestamp="t", fractions=(0.3, 0.3, 0.4))
    assert (
        s.train["t"].max()
        < s.validation["t"].min()
        <= s.validation["t"].max()
        < s.holdout["t"].min()
    )
    assert set(s.validation["t"]) == {datetime(2024, 1, 2)}


def test_explicit_cutoffs():
    frame = generate(2000, days=10, seed=5)
    s = split_by_time(
        frame,
        timestamp="event_timestamp",
        validation_start=datetime(2024, 1, 7),
        holdout_start=datetime(2024, 1, 9),
    )
    assert s.train["event_timestamp"].max() < datetime(2024, 1, 7)
    assert s.holdout["event_timestamp"].min() >= datetime(2024, 1, 9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"validation_start": datetime(2030, 1, 1), "holdout_start": datetime(2031, 1, 1)},
            "validation part .* is empty",
        ),
        (
            {"validation_start": datetime(2024, 1, 5), "holdout_start": datetime(2024, 1, 3)},
            "before validation",
        ),
        ({"fractions": (1.0, 0.0, 0.0)}, "empty"),
    ],
)
def test_degenerate_splits_are_errors(kwargs, match):
    with pytest.raises(DegenerateDataError, match=match):
        split_by_time(generate(500, days=10, seed=5), timestamp="event_timestamp", **kwargs)


def test_null_time_stamps_and_empty_tables_are_errors():
    frame = pl.DataFrame({"t": [datetime(2024, 1, 1), None]})
    with pytest.raises(DegenerateDataError, match="null"):
        split_by_time(frame, timestamp="t")
    with pytest.raises(DegenerateDataError, match="0 rows"):
        split_by_time(frame.clear(), timestamp="t")
    with pytest.raises(DegenerateDataError, match="not in the table"):
        split_by_time(frame, timestamp="when")

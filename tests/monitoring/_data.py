"""Shared data makers for the monitoring tests."""

from __future__ import annotations

import numpy as np
import polars as pl

CATEGORIES = ("basic", "plus", "pro", "team", "enterprise")
SHARES = (0.35, 0.2, 0.2, 0.15, 0.1)


def frame(
    rng: np.random.Generator, n: int, *, shift: float = 0.0, swap: bool = False, numeric: int = 3
) -> pl.DataFrame:
    """``numeric`` normal features (the first shifted by ``shift`` sd) and a plan feature
    whose two most frequent categories swap shares with ``swap``."""
    shares = list(SHARES)
    if swap:
        shares[0], shares[1] = shares[1], shares[0]
    data = {f"x{i}": rng.normal(shift if i == 0 else 0.0, 1.0, n) for i in range(numeric)}
    codes = np.searchsorted(np.cumsum(shares), rng.random(n), "right").clip(0, len(shares) - 1)
    plan = pl.Series("plan", codes).replace_strict(
        list(range(len(CATEGORIES))), list(CATEGORIES), return_dtype=pl.String
    )
    return pl.DataFrame(data).with_columns(plan)


def probability(data: pl.DataFrame) -> np.ndarray:
    """The true P(label = 1 | features) of the churn concept the tests use."""
    plan = (data.get_column("plan") == "pro").to_numpy()
    logit = (
        1.4 * data.get_column("x0").to_numpy()
        - 0.8 * data.get_column("x1").to_numpy()
        + 0.6 * plan
        - 0.2
    )
    return 1.0 / (1.0 + np.exp(-logit))


def scores(p: np.ndarray) -> np.ndarray:
    """A model's raw scores: monotone in the truth but miscalibrated (calibration fixes it)."""
    return 1.0 / (1.0 + np.exp(-(np.log(p / (1 - p)) * 0.6 + 0.4)))

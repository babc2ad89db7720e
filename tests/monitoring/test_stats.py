"""The statistics kernels against scipy (a test-only reference) and plain numpy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import spatial
from scipy import stats as sp

from conveyor.ml.evaluate import roc_auc
from conveyor.monitoring import stats


@pytest.mark.parametrize("case", ["continuous", "ties", "unequal", "disjoint", "tiny"])
def test_ks_statistic_equals_scipy(case: str) -> None:
    rng = np.random.default_rng(7)
    a, b = {
        "continuous": (rng.normal(size=5000), rng.normal(0.05, 1.1, 4000)),
        "ties": (rng.integers(0, 7, 3000).astype(float), rng.integers(1, 8, 2500).astype(float)),
        "unequal": (rng.exponential(size=100), rng.exponential(1.3, 20_000)),
        "disjoint": (rng.uniform(0, 1, 50), rng.uniform(2, 3, 70)),
        "tiny": (np.array([1.0]), np.array([0.5, 1.0, 2.0])),
    }[case]
    statistic, p = stats.ks_2samp(np.sort(a), np.sort(b))
    expected = sp.ks_2samp(a, b)
    assert abs(statistic - expected.statistic) <= 1e-9
    assert 0.0 <= p <= 1.0
    if min(a.size, b.size) >= 1000:  # the asymptotic p-value, where it applies
        assert p == pytest.approx(sp.ks_2samp(a, b, method="asymp").pvalue, rel=0.05, abs=1e-6)


def test_psi_equals_a_plain_numpy_reference_on_the_same_bins() -> None:
    rng = np.random.default_rng(3)
    ref, cur = np.sort(rng.normal(size=20_000)), np.sort(rng.normal(0.3, 1.2, 15_000))
    edges = np.quantile(ref, np.linspace(0.1, 0.9, 9))
    expected_counts = np.histogram(ref, np.concatenate(([-np.inf], edges, [np.inf])))[0]
    actual_counts = np.histogram(cur, np.concatenate(([-np.inf], edges, [np.inf])))[0]
    e = np.clip(expected_counts / ref.size, 1e-4, None)
    a = np.clip(actual_counts / cur.size, 1e-4, None)
    reference = float(np.sum((a - e) * np.log(a / e)))
    got = stats.psi(stats.bin_shares(ref, edges), stats.bin_shares(cur, edges))
    assert got == pytest.approx(reference, rel=1e-12)
    assert got > 0.05


def test_chi_square_js_and_wasserstein_equal_scipy() -> None:
    ref, cur = np.array([350, 200, 200, 150, 100]), np.array([180, 330, 210, 160, 120])
    chi2, p = stats.chi2_homogeneity(ref, cur)
    expected = sp.chi2_contingency(np.vstack([ref, cur]), correction=False)
    assert chi2 == pytest.approx(expected.statistic, rel=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9)
    assert stats.jensen_shannon(ref / ref.sum(), cur / cur.sum()) == pytest.approx(
        spatial.distance.jensenshannon(ref, cur, base=2), rel=1e-12
    )
    rng = np.random.default_rng(1)
    a, b = np.sort(rng.normal(size=700)), np.sort(rng.gamma(2.0, size=900))
    assert stats.wasserstein(a, b) == pytest.approx(sp.wasserstein_distance(a, b), rel=1e-12)


@pytest.mark.parametrize(
    ("x", "dof"), [(0.5, 1), (12.3, 5), (300.0, 250), (3.0, 40), (1e-3, 3), (80.0, 10)]
)
def test_chi2_tail_equals_scipy(x: float, dof: int) -> None:
    assert stats.chi2_sf(x, dof) == pytest.approx(sp.chi2.sf(x, dof), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("x", [0.1, 0.5, 1.0, 1.36, 2.5])
def test_kolmogorov_tail_equals_scipy(x: float) -> None:
    assert stats.kolmogorov_sf(x) == pytest.approx(sp.kstwobign.sf(x), rel=1e-9, abs=1e-15)


def test_auc_and_its_delong_interval() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 4000)
    score = np.round(rng.normal(size=4000) + 0.8 * y, 1)  # with ties
    auc, se = stats.auc_delong(y, score)
    assert 0 < se < 0.02
    assert auc == pytest.approx(roc_auc(y, score), rel=1e-12)
    # the interval covers the AUC of fresh samples about 95 % of the time
    true_auc = sp.norm.cdf(0.8 / np.sqrt(2))
    hits = 0
    for seed in range(200):
        r = np.random.default_rng(seed + 100)
        yy = r.integers(0, 2, 400)
        a, s = stats.auc_delong(yy, r.normal(size=400) + 0.8 * yy)
        hits += abs(a - true_auc) <= stats.Z95 * s
    assert 0.90 <= hits / 200 <= 0.99


def test_wilson_interval() -> None:
    low, high = stats.wilson(80, 100)
    expected = sp.binomtest(80, 100).proportion_ci(method="wilson")
    assert (low, high) == pytest.approx((expected.low, expected.high), rel=1e-9)

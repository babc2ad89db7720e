"""Statistics kernels of monitoring, on numpy arrays (no scipy at run time).

Every function here is a plain computation over arrays; :mod:`.drift` and
:mod:`.performance` decide what the numbers mean.  The p-values use the
asymptotic distributions (Kolmogorov, chi-square, normal); the samples
monitoring sees are large enough for them, and decisions rest on effect sizes
first (``docs/monitoring.md``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: Shares below this are clipped before PSI's logarithm (an empty bin is not infinite drift).
PSI_EPSILON = 1e-4
Z95 = 1.959963984540054


# -- distributions -------------------------------------------------------------------------


def kolmogorov_sf(x: float) -> float:
    """P(K > x) of the Kolmogorov distribution (the asymptotic KS p-value at ``x``)."""
    if x <= 0:
        return 1.0
    if x < 0.2:  # the alternating series converges slowly there; the value is 1 to 1e-18
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = 2.0 * (-1) ** (k - 1) * math.exp(-2.0 * k * k * x * x)
        total += term
        if abs(term) < 1e-16:
            break
    return min(max(total, 0.0), 1.0)


def chi2_sf(x: float, dof: int) -> float:
    """P(X > x) for X chi-square with ``dof`` degrees of freedom (regularized gamma Q)."""
    if dof <= 0:
        return float("nan")
    if x <= 0:
        return 1.0
    return _gamma_q(dof / 2.0, x / 2.0)


def _gamma_q(a: float, x: float) -> float:
    """Upper regularized incomplete gamma Q(a, x) (series below a+1, continued fraction above)."""
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        ap = a
        for _ in range(1000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return min(1.0, math.exp(log_front) * h)


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


# -- distances between distributions --------------------------------------------------------


def ks_2samp(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov ``(statistic, p-value)`` of two *sorted* finite arrays.

    The statistic is exact (the largest gap between the two empirical CDFs over
    every observed value, as ``scipy.stats.ks_2samp`` computes it); the p-value is
    the asymptotic one.
    """
    import numpy as np

    n, m = reference.size, current.size
    if n == 0 or m == 0:
        return float("nan"), float("nan")
    # Between two distinct reference values the reference CDF is flat and the current
    # one rises, so the gap peaks at a reference value or just before the next one:
    # one search of the reference in the current sample finds both (half the work of
    # evaluating both CDFs at every point of both samples).
    upto = np.searchsorted(current, reference, "right")  # current values <= r
    tied = current[np.maximum(upto - 1, 0)] == reference
    tied &= upto > 0
    below = upto  # current values < r: differs only where current has r itself
    if tied.any():
        below = upto.copy()
        below[tied] = np.searchsorted(current, reference[tied], "left")
    ref_cdf = np.arange(1, n + 1) / n  # at the i-th reference value, without ties
    at = ref_cdf - upto / m
    before = (ref_cdf - 1.0 / n) - below / m
    change = reference[1:] != reference[:-1]
    if not change.all():  # equal reference values: the CDF is the last one's, and steps
        at = at[np.append(change, True)]  # only before the first of them
        before = before[np.insert(change, 0, True)]
    d = float(max(np.abs(at).max(), np.abs(before).max()))
    return d, kolmogorov_sf(math.sqrt(n * m / (n + m)) * d)


def ks_against_cdf(
    points: np.ndarray, levels: np.ndarray, current: np.ndarray, reference_rows: int
) -> tuple[float, float]:
    """KS ``(statistic, p-value)`` of a sorted sample against a CDF known at ``points``.

    The reference CDF is known only where a profile recorded a quantile, so the
    statistic is the largest gap at those points: a lower bound of the full KS
    statistic (a shift that shows nowhere between the quantiles is not seen).
    """
    import numpy as np

    m = current.size
    if m == 0 or points.size == 0:
        return float("nan"), float("nan")
    gaps = np.abs(np.searchsorted(current, points, "right") / m - levels)
    d = float(gaps.max())
    n = max(int(reference_rows), 1)
    return d, kolmogorov_sf(math.sqrt(n * m / (n + m)) * d)


def psi(expected: np.ndarray, actual: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of two share vectors over the same bins."""
    import numpy as np

    e = np.clip(np.asarray(expected, dtype=float), epsilon, None)
    a = np.clip(np.asarray(actual, dtype=float), epsilon, None)
    return float(np.sum((a - e) * np.log(a / e)))


def sorted_quantiles(sorted_values: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Quantiles of a sorted sample (``np.quantile``'s linear rule, without re-sorting)."""
    import numpy as np

    pos = np.asarray(levels, dtype=float) * (sorted_values.size - 1)
    low = np.floor(pos).astype(int)
    high = np.minimum(low + 1, sorted_values.size - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def bin_shares(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of a sorted sample in the bins ``(-inf, e0], (e0, e1], ..., (ek, inf)``."""
    import numpy as np

    if sorted_values.size == 0:
        return np.zeros(edges.size + 1)
    cuts = np.searchsorted(sorted_values, edges, "right")
    counts = np.diff(np.concatenate(([0], cuts, [sorted_values.size])))
    return counts / sorted_values.size


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two share vectors."""
    import numpy as np

    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    p = p / p.sum() if p.sum() > 0 else p
    q = q / q.sum() if q.sum() > 0 else q
    mid = (p + q) / 2.0

    def kl(a: np.ndarray) -> float:
        keep = a > 0
        return float(np.sum(a[keep] * np.log2(a[keep] / mid[keep])))

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2.0))


def chi2_homogeneity(
    reference_counts: np.ndarray, current_counts: np.ndarray
) -> tuple[float, float]:
    """Chi-square test that two count vectors over the same categories share a distribution."""
    import numpy as np

    table = np.vstack([reference_counts, current_counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    return stat, chi2_sf(stat, table.shape[1] - 1)


def wasserstein(reference: np.ndarray, current: np.ndarray) -> float:
    """First Wasserstein distance of two sorted finite samples (area between their CDFs)."""
    import numpy as np

    if reference.size == 0 or current.size == 0:
        return float("nan")
    both = np.concatenate([reference, current])
    both.sort(kind="stable")
    widths = np.diff(both)
    cdf_r = np.searchsorted(reference, both[:-1], "right") / reference.size
    cdf_c = np.searchsorted(current, both[:-1], "right") / current.size
    return float(np.sum(np.abs(cdf_r - cdf_c) * widths))


def two_proportions(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value that two proportions ``x1/n1`` and ``x2/n2`` are equal."""
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0 if x1 / n1 == x2 / n2 else 0.0
    return 2.0 * normal_sf(abs(x1 / n1 - x2 / n2) / se)


# -- performance metrics with intervals -----------------------------------------------------


def auc_delong(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """ROC AUC of binary labels ``y`` for ``score``, with DeLong's standard error."""
    import numpy as np

    y = np.asarray(y).astype(bool)
    pos = np.sort(np.asarray(score, dtype=float)[y])
    neg = np.sort(np.asarray(score, dtype=float)[~y])
    n1, n0 = pos.size, neg.size
    if n1 == 0 or n0 == 0:
        return float("nan"), float("nan")
    # placement values: share of the other class each score beats (ties count half)
    v10 = (np.searchsorted(neg, pos, "left") + np.searchsorted(neg, pos, "right")) / (2 * n0)
    v01 = 1.0 - (np.searchsorted(pos, neg, "left") + np.searchsorted(pos, neg, "right")) / (2 * n1)
    auc = float(v10.mean())
    var = (v10.var(ddof=1) / n1 if n1 > 1 else 0.0) + (v01.var(ddof=1) / n0 if n0 > 1 else 0.0)
    return auc, math.sqrt(max(var, 0.0))


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def hanley_mcneil_se(auc: float, positives: float, negatives: float) -> float:
    """Hanley and McNeil's standard error of an AUC from the class sizes."""
    if positives <= 0 or negatives <= 0 or math.isnan(auc):
        return float("nan")
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    var = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)
    ) / (positives * negatives)
    return math.sqrt(max(var, 0.0))

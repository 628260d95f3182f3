"""Uncertainty for verdicts: Wilson score intervals and percentile bootstraps.

Every verdict of an experiment states an interval computed here, over
particles or seeds (never over points of one trajectory, which are not
independent).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import norm

#: Bootstrap resamples (percentile intervals); fixed seed, so a report is reproducible.
N_BOOT = 2000


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (low, high) of the proportion ``k / n`` (Wilson 1927).

    ``n == 0`` gives (nan, nan).
    """
    if n <= 0:
        return math.nan, math.nan
    if not 0 <= k <= n:
        raise ValueError(f"k = {k} is not within 0..{n}")
    z = float(norm.ppf(0.5 + confidence / 2.0))
    p = k / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / den
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


def bootstrap(
    samples: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.median,
    confidence: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(estimate, low, high): ``statistic`` of ``samples`` with a percentile bootstrap interval.

    ``samples`` (n,) is resampled with replacement ``n_boot`` times. Non-finite
    values stay in (a statistic such as the median handles ``inf`` = "never").
    An empty sample gives nans.
    """
    x = np.asarray(samples, dtype=np.float64).ravel()
    if x.size == 0:
        return math.nan, math.nan, math.nan
    est = float(statistic(x))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    boots = np.array([statistic(x[i]) for i in idx], dtype=np.float64)
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(boots, [a, 1.0 - a], method="linear") if np.isfinite(boots).all() else (
        np.quantile(np.sort(boots), [a, 1.0 - a], method="nearest"))  # fmt: skip
    return est, float(lo), float(hi)


def _difference(a: float, b: float) -> float:
    """a - b, with inf - inf = 0 (both never reached the target: a tie)."""
    if math.isinf(a) and math.isinf(b) and (a > 0) == (b > 0):
        return 0.0
    return a - b


def bootstrap_diff(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.median,
    confidence: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(estimate, low, high) of ``statistic(a) - statistic(b)``, both samples resampled independently.

    Statistics may be infinite (a median of "never reached" = +inf): inf - finite = inf, and two equal
    infinities make a difference of 0 (a tie); the interval takes the nearest resamples (no interpolation).
    """
    xa = np.asarray(a, dtype=np.float64).ravel()
    xb = np.asarray(b, dtype=np.float64).ravel()
    if xa.size == 0 or xb.size == 0:
        return math.nan, math.nan, math.nan
    sa, sb = float(statistic(xa)), float(statistic(xb))
    est = _difference(sa, sb)
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, xa.size, size=(n_boot, xa.size))
    ib = rng.integers(0, xb.size, size=(n_boot, xb.size))
    boots = np.array([_difference(float(statistic(xa[i])), float(statistic(xb[j])))
                      for i, j in zip(ia, ib, strict=True)])  # fmt: skip
    q = (1.0 - confidence) / 2.0
    # "nearest": no interpolation between an infinite and a finite resample (never reached = +inf)
    lo, hi = np.quantile(boots, [q, 1.0 - q], method="nearest")
    return est, float(lo), float(hi)


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, confidence: float = 0.95,
             n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float, float]:  # fmt: skip
    """(rho, low, high): Spearman rank correlation of paired samples with a bootstrap interval over pairs."""
    from scipy.stats import spearmanr

    xa = np.asarray(x, dtype=np.float64).ravel()
    ya = np.asarray(y, dtype=np.float64).ravel()
    if xa.size < 3:
        return math.nan, math.nan, math.nan
    est = float(spearmanr(xa, ya).statistic)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot // 4):
        i = rng.integers(0, xa.size, size=xa.size)
        if np.ptp(xa[i]) == 0 or np.ptp(ya[i]) == 0:
            continue
        boots.append(float(spearmanr(xa[i], ya[i]).statistic))
    if not boots:
        return est, math.nan, math.nan
    q = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(boots, [q, 1.0 - q])
    return est, float(lo), float(hi)

"""Basins of attraction: fractions with Wilson intervals, basin maps, boundary
fraction and basin entropy (Daza et al. 2016), outcome probabilities per
starting point when several (noisy) particles start from the same point.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import norm

from .attractors import OUTCOME_CODES


def wilson(k: np.ndarray | int, n: int, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (low, high) of a proportion ``k / n``."""
    k = np.asarray(k, dtype=np.float64)
    if n <= 0:
        return np.full(k.shape, np.nan), np.full(k.shape, np.nan)
    z = float(norm.ppf(0.5 + confidence / 2.0))
    p = k / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def outcome_codes(n_attractors: int) -> np.ndarray:
    """Label codes of every outcome: attractors 0..K-1, then -1, -2, -3."""
    return np.concatenate([np.arange(n_attractors), np.array(sorted(OUTCOME_CODES, reverse=True))]).astype(np.int64)


def fractions(labels: np.ndarray, n_attractors: int, confidence: float = 0.95) -> dict[str, np.ndarray]:
    """Counts, fractions and Wilson intervals of every outcome over all particles.

    Outcomes are :func:`outcome_codes` (attractors, then not converged,
    diverged, left the bound); the fractions sum to 1.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = labels.shape[0]
    codes = outcome_codes(n_attractors)
    shift = len(OUTCOME_CODES)
    counts = np.bincount(labels + shift, minlength=n_attractors + shift)
    counts = counts[codes + shift]
    frac = counts / n if n else np.zeros(len(codes))
    lo, hi = wilson(counts, n, confidence)
    return {"code": codes, "count": counts.astype(np.int64), "fraction": frac, "ci_low": lo, "ci_high": hi}


def basin_map(labels: np.ndarray, resolution: Sequence[int]) -> np.ndarray:
    """Labels of a grid initialisation reshaped to the grid (C order, axis k = coordinate k)."""
    return np.asarray(labels).reshape(tuple(int(r) for r in resolution))


def boundary_fraction(grid: np.ndarray) -> float:
    """Fraction of grid cells with a neighbour (along any axis) of another label."""
    grid = np.asarray(grid)
    edge = np.zeros(grid.shape, dtype=bool)
    for ax in range(grid.ndim):
        if grid.shape[ax] < 2:
            continue
        diff = np.diff(grid, axis=ax) != 0
        a = [slice(None)] * grid.ndim
        b = [slice(None)] * grid.ndim
        a[ax] = slice(0, -1)
        b[ax] = slice(1, None)
        edge[tuple(a)] |= diff
        edge[tuple(b)] |= diff
    return float(edge.mean()) if edge.size else 0.0


def basin_entropy(grid: np.ndarray, box: int = 5) -> tuple[float, float]:
    """Basin entropy ``S_b`` and boundary basin entropy ``S_bb`` (Daza et al. 2016).

    The grid is cut into boxes of ``box`` cells per side (trailing cells that do
    not fill a box are dropped); ``S_i = sum_j p_ij log(1 / p_ij)`` over the
    outcomes in box i; ``S_b`` = mean over all boxes, ``S_bb`` = mean over the
    boxes with more than one outcome (0 when there are none).
    """
    grid = np.asarray(grid, dtype=np.int64)
    b = max(1, min([int(box), *grid.shape]))
    trim = tuple(slice(0, (s // b) * b) for s in grid.shape)
    g = grid[trim]
    shape: list[int] = []
    for s in g.shape:
        shape += [s // b, b]
    g = g.reshape(shape)
    nd = grid.ndim
    g = g.transpose([2 * i for i in range(nd)] + [2 * i + 1 for i in range(nd)]).reshape(-1, b**nd)
    # entropy per box: sort the labels of each box and count runs
    s = np.sort(g, axis=1)
    new = np.ones_like(s, dtype=bool)
    new[:, 1:] = s[:, 1:] != s[:, :-1]
    run_id = np.cumsum(new, axis=1) - 1
    n_boxes, m = s.shape
    flat = run_id + (np.arange(n_boxes) * m)[:, None]
    counts = np.bincount(flat.ravel(), minlength=n_boxes * m).reshape(n_boxes, m)
    p = counts / m
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=1)
    boundary = new.sum(axis=1) > 1
    s_b = float(ent.mean()) if n_boxes else 0.0
    s_bb = float(ent[boundary].mean()) if np.any(boundary) else 0.0
    return s_b, s_bb


def start_point_probabilities(init_x: np.ndarray, labels: np.ndarray,
                              n_attractors: int) -> dict[str, np.ndarray] | None:  # fmt: skip
    """Probability of each outcome per distinct starting point, or None if no point repeats.

    Returns ``{"x" (S, D), "count" (S,), "probability" (S, C), "code" (C,)}``
    with the outcomes of :func:`outcome_codes`.
    """
    init_x = np.ascontiguousarray(init_x)
    n = init_x.shape[0]
    if n == 0:
        return None
    rows = init_x.view(np.dtype((np.void, init_x.dtype.itemsize * init_x.shape[1]))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    s = first.shape[0]
    if s == n:
        return None
    codes = outcome_codes(n_attractors)
    shift = len(OUTCOME_CODES)
    col = np.empty(n_attractors + shift, dtype=np.int64)
    col[codes + shift] = np.arange(len(codes))
    c = col[np.asarray(labels, dtype=np.int64) + shift]
    table = np.bincount(inverse.ravel() * len(codes) + c, minlength=s * len(codes)).reshape(s, len(codes))
    count = table.sum(axis=1)
    return {"x": init_x[first], "count": count, "probability": table / count[:, None], "code": codes}

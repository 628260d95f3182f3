"""Saddle tools: how particles leave a neighbourhood of a critical point.

:func:`escape` gives, for each recorded trajectory, the first record step
outside a ball around a given point and the direction of that exit, to be
compared with the Hessian's negative-curvature eigenvector there
(``/analysis/attractors/eigenvectors``, or
:func:`descentlab.analysis.critical.analyze_points`).
"""

from __future__ import annotations

import numpy as np


def escape(trajectory_x: np.ndarray, record_steps: np.ndarray, center: np.ndarray,
           radius: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """First exit of each trajectory from the ball ``|x - center| <= radius``.

    ``trajectory_x`` (N, R, D) at ``record_steps`` (R,). Returns (steps (N,)
    int64: the first record step outside the ball, -1 if it never left;
    directions (N, D): the unit vector from the centre to that point, NaN if
    it never left). Non-finite positions count as outside.
    """
    x = np.asarray(trajectory_x, dtype=np.float64)
    d = x - np.asarray(center, dtype=np.float64)[None, None, :]
    r = np.linalg.norm(d, axis=2)
    out = ~(r <= radius)
    left = out.any(axis=1)
    first = np.argmax(out, axis=1)
    steps = np.where(left, np.asarray(record_steps, dtype=np.int64)[first], -1)
    dirs = np.full((x.shape[0], x.shape[2]), np.nan)
    idx = np.nonzero(left)[0]
    v = d[idx, first[idx], :]
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    dirs[idx] = np.where(np.isfinite(norm) & (norm > 0), v / np.where(norm > 0, norm, 1.0), np.nan)
    return steps, dirs

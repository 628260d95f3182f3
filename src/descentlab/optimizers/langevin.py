"""Gradient descent with Gaussian gradient noise (unadjusted Langevin-style).

    x <- x - lr * (g + noise_std * xi),   xi ~ N(0, 1) per coordinate

xi is drawn with the counter-based RNG (:func:`descentlab.core.rng.standard_normal`)
keyed by ``(seed, particle = gid0 + i, stream = t, draw = d)``: a pure function
of the run seed, the global particle id, the step and the coordinate, so it is
the same whatever the block, chunk, shard or target. ``t`` is the 1-based step
*within the optimizer phase* (stream 0 is the initialisation's), so a switch
with two Langevin phases replays the same noise sequence in each.

With ``noise_std = sqrt(2 T / lr)`` this is the Euler-Maruyama discretisation of
overdamped Langevin dynamics at temperature T (Welling & Teh 2011 without the
minibatch). h: :data:`HYPER` (noise_std); no state.
"""

from __future__ import annotations

import numpy as np

from .._jit import math_function, real
from ..core.rng import standard_normal
from .base import hyper_indices

#: Layout of the packed hyperparameters ``h`` (see :class:`~descentlab.optimizers.base.Optimizer`).
HYPER = ("noise_std",)
(NOISE_STD,) = hyper_indices(HYPER, "noise_std")


@math_function
def langevin_step(x, g, s, h, lr, t, H, ws, seed, gid0, lo, hi):
    noise = real(h[NOISE_STD], x)
    rate = real(lr, x)
    stream = np.uint64(t)
    dim = x.shape[0]
    for d in range(dim):
        draw = np.uint64(d)
        for i in range(lo, hi):
            xi = real(standard_normal(seed, np.uint64(gid0) + np.uint64(i), stream, draw), x)
            x[d, i] -= rate * (g[d, i] + noise * xi)

"""Adagrad.

torch.optim.Adagrad, https://pytorch.org/docs/stable/generated/torch.optim.Adagrad.html
(Duchi, Hazan & Singer 2011)::

    state_sum <- initial_accumulator_value                  (init_fill)
    clr <- lr / (1 + (t - 1) * lr_decay)
    g <- g + weight_decay * x
    state_sum <- state_sum + g * g
    x <- x - clr * g / (sqrt(state_sum) + eps)

h: :data:`HYPER` (lr_decay, weight_decay, initial_accumulator_value, eps); state s = [sum].
"""

from __future__ import annotations

import math

from .._jit import math_function, real
from .base import hyper_indices

#: Layout of the packed hyperparameters ``h`` (see :class:`~descentlab.optimizers.base.Optimizer`).
HYPER = ("lr_decay", "weight_decay", "initial_accumulator_value", "eps")
LR_DECAY, WEIGHT_DECAY, INITIAL_ACCUMULATOR_VALUE, EPS = hyper_indices(
    HYPER, "lr_decay", "weight_decay", "initial_accumulator_value", "eps"
)


@math_function
def adagrad_step(x, g, s, h, lr, t, H, ws, seed, gid0, lo, hi):
    clr = real(lr / (1.0 + (t - 1) * h[LR_DECAY]), x)
    wd = real(h[WEIGHT_DECAY], x)
    eps = real(h[EPS], x)
    dim = x.shape[0]
    if h[WEIGHT_DECAY] != 0.0:
        for d in range(dim):
            for i in range(lo, hi):
                gi = g[d, i] + wd * x[d, i]
                acc = s[0, d, i] + gi * gi
                s[0, d, i] = acc
                x[d, i] -= clr * gi / (math.sqrt(acc) + eps)
    else:
        for d in range(dim):
            for i in range(lo, hi):
                gi = g[d, i]
                acc = s[0, d, i] + gi * gi
                s[0, d, i] = acc
                x[d, i] -= clr * gi / (math.sqrt(acc) + eps)

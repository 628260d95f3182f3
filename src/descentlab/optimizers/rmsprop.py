"""RMSprop, plain or centered, with optional momentum and L2 weight decay.

torch.optim.RMSprop, https://pytorch.org/docs/stable/generated/torch.optim.RMSprop.html
(Hinton's lecture 6e; Graves 2013 for the centered variant)::

    g <- g + weight_decay * x
    v <- alpha * v + (1 - alpha) * g^2
    if centered:  g_avg <- alpha * g_avg + (1 - alpha) * g;   v~ <- v - g_avg^2
    else:         v~ <- v
    if momentum > 0:  b <- momentum * b + g / (sqrt(v~) + eps);   x <- x - lr * b
    else:             x <- x - lr * g / (sqrt(v~) + eps)

h: :data:`HYPER` (alpha, eps, weight_decay, momentum, centered);
state s = [square_avg, momentum_buffer, grad_avg].
"""

from __future__ import annotations

import math

from .._jit import math_function, real
from .base import hyper_indices

#: Layout of the packed hyperparameters ``h`` (see :class:`~descentlab.optimizers.base.Optimizer`).
HYPER = ("alpha", "eps", "weight_decay", "momentum", "centered")
ALPHA, EPS, WEIGHT_DECAY, MOMENTUM, CENTERED = hyper_indices(
    HYPER, "alpha", "eps", "weight_decay", "momentum", "centered"
)


@math_function
def rmsprop_step(x, g, s, h, lr, t, H, ws, seed, gid0, lo, hi):
    alpha = real(h[ALPHA], x)
    one_m_alpha = real(1.0 - h[ALPHA], x)
    eps = real(h[EPS], x)
    wd = real(h[WEIGHT_DECAY], x)
    mu = real(h[MOMENTUM], x)
    rate = real(lr, x)
    use_wd = h[WEIGHT_DECAY] != 0.0
    dim = x.shape[0]
    if h[CENTERED] != 0.0 and h[MOMENTUM] > 0.0:  # centered, momentum
        for d in range(dim):
            for i in range(lo, hi):
                gi = g[d, i] + wd * x[d, i] if use_wd else g[d, i]
                v = alpha * s[0, d, i] + one_m_alpha * gi * gi
                ga = alpha * s[2, d, i] + one_m_alpha * gi
                b = mu * s[1, d, i] + gi / (math.sqrt(v - ga * ga) + eps)
                s[0, d, i] = v
                s[1, d, i] = b
                s[2, d, i] = ga
                x[d, i] -= rate * b
    elif h[CENTERED] != 0.0:  # centered
        for d in range(dim):
            for i in range(lo, hi):
                gi = g[d, i] + wd * x[d, i] if use_wd else g[d, i]
                v = alpha * s[0, d, i] + one_m_alpha * gi * gi
                ga = alpha * s[2, d, i] + one_m_alpha * gi
                s[0, d, i] = v
                s[2, d, i] = ga
                x[d, i] -= rate * gi / (math.sqrt(v - ga * ga) + eps)
    elif h[MOMENTUM] > 0.0:  # momentum
        for d in range(dim):
            for i in range(lo, hi):
                gi = g[d, i] + wd * x[d, i] if use_wd else g[d, i]
                v = alpha * s[0, d, i] + one_m_alpha * gi * gi
                b = mu * s[1, d, i] + gi / (math.sqrt(v) + eps)
                s[0, d, i] = v
                s[1, d, i] = b
                x[d, i] -= rate * b
    else:
        for d in range(dim):
            for i in range(lo, hi):
                gi = g[d, i] + wd * x[d, i] if use_wd else g[d, i]
                v = alpha * s[0, d, i] + one_m_alpha * gi * gi
                s[0, d, i] = v
                x[d, i] -= rate * gi / (math.sqrt(v) + eps)

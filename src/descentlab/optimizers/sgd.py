"""SGD with momentum, dampening, Nesterov and weight decay.

torch.optim.SGD, https://pytorch.org/docs/stable/generated/torch.optim.SGD.html::

    g <- g + weight_decay * x
    if momentum != 0:
        b <- g                               at t = 1
        b <- momentum * b + (1 - dampening) g   at t > 1
        g <- g + momentum * b  if nesterov else  b
    x <- x - lr * g

h: :data:`HYPER` (momentum, dampening, weight_decay, nesterov); state s = [momentum_buffer].
"""

from __future__ import annotations

from .._jit import math_function, real
from .base import hyper_indices

#: Layout of the packed hyperparameters ``h`` (see :class:`~descentlab.optimizers.base.Optimizer`).
HYPER = ("momentum", "dampening", "weight_decay", "nesterov")
MOMENTUM, DAMPENING, WEIGHT_DECAY, NESTEROV = hyper_indices(HYPER, "momentum", "dampening", "weight_decay", "nesterov")


@math_function
def sgd_step(x, g, s, h, lr, t, H, ws, seed, gid0, lo, hi):
    mu = real(h[MOMENTUM], x)
    damp = real(1.0 - h[DAMPENING], x)
    wd = real(h[WEIGHT_DECAY], x)
    rate = real(lr, x)
    dim = x.shape[0]
    if h[MOMENTUM] == 0.0:
        for d in range(dim):
            for i in range(lo, hi):
                x[d, i] -= rate * (g[d, i] + wd * x[d, i])
    elif t == 1:
        for d in range(dim):
            for i in range(lo, hi):
                gi = g[d, i] + wd * x[d, i]
                s[0, d, i] = gi
                x[d, i] -= rate * (gi + mu * gi if h[NESTEROV] != 0.0 else gi)
    elif h[NESTEROV] != 0.0:
        for d in range(dim):
            for i in range(lo, hi):
                gi = g[d, i] + wd * x[d, i]
                b = mu * s[0, d, i] + damp * gi
                s[0, d, i] = b
                x[d, i] -= rate * (gi + mu * b)
    else:
        for d in range(dim):
            for i in range(lo, hi):
                gi = g[d, i] + wd * x[d, i]
                b = mu * s[0, d, i] + damp * gi
                s[0, d, i] = b
                x[d, i] -= rate * b

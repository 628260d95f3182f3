"""SGD with momentum, dampening, Nesterov and weight decay.

torch.optim.SGD, https://pytorch.org/docs/stable/generated/torch.optim.SGD.html::

    g <- g + weight_decay * x
    if momentum != 0:
        b <- g                               at t = 1
        b <- momentum * b + (1 - dampening) g   at t > 1
        g <- g + momentum * b  if nesterov else  b
    x <- x - lr * g

h = [momentum, dampening, weight_decay, nesterov]; state s = [momentum_buffer].
"""

from __future__ import annotations

from .._jit import math_function, real


@math_function
def sgd_step(x, g, s, h, lr, t, H, ws, seed, gid0, lo, hi):
    mu = real(h[0], x)
    damp = real(1.0 - h[1], x)
    wd = real(h[2], x)
    rate = real(lr, x)
    dim = x.shape[0]
    if h[0] == 0.0:
        for d in range(dim):
            for i in range(lo, hi):
                x[d, i] -= rate * (g[d, i] + wd * x[d, i])
    elif t == 1:
        for d in range(dim):
            for i in range(lo, hi):
                gi = g[d, i] + wd * x[d, i]
                s[0, d, i] = gi
                x[d, i] -= rate * (gi + mu * gi if h[3] != 0.0 else gi)
    elif h[3] != 0.0:
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

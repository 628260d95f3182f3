"""Adam, AMSGrad and AdamW.

torch.optim.Adam / AdamW, https://pytorch.org/docs/stable/generated/torch.optim.Adam.html
(Kingma & Ba 2015; Reddi et al. 2018 for AMSGrad; Loshchilov & Hutter 2019 for AdamW).

Order of operations as torch's single-tensor implementation:
``denom = sqrt(v) / sqrt(1 - beta2^t) + eps`` and ``x -= lr / (1 - beta1^t) * m / denom``;
with ``amsgrad`` the running maximum of the raw ``v`` replaces ``v`` in ``denom``.
NOTE: the reciprocal ``1/sqrt(1-beta2^t)`` is multiplied rather than divided
(one division per coordinate instead of two; differs from torch by rounding only).

h: :data:`HYPER` (beta1, beta2, eps, weight_decay, amsgrad); state s = [m, v, v_max].
"""

from __future__ import annotations

import math

from .._jit import math_function, real
from .base import hyper_indices

#: Layout of the packed hyperparameters ``h`` (see :class:`~descentlab.optimizers.base.Optimizer`).
HYPER = ("betas[0]", "betas[1]", "eps", "weight_decay", "amsgrad")
BETA1, BETA2, EPS, WEIGHT_DECAY, AMSGRAD = hyper_indices(
    HYPER, "betas[0]", "betas[1]", "eps", "weight_decay", "amsgrad"
)


@math_function
def _adam_core(x, g, s, h, lr, t, lo, hi, decoupled):
    beta1 = h[BETA1]
    beta2 = h[BETA2]
    bc1 = 1.0 - beta1**t
    bc2 = 1.0 - beta2**t
    b1 = real(beta1, x)
    one_m_b1 = real(1.0 - beta1, x)
    b2 = real(beta2, x)
    one_m_b2 = real(1.0 - beta2, x)
    eps = real(h[EPS], x)
    wd = real(h[WEIGHT_DECAY], x)
    inv_sqrt_bc2 = real(1.0 / math.sqrt(bc2), x)
    step_size = real(lr / bc1, x)
    dim = x.shape[0]
    if decoupled and h[WEIGHT_DECAY] != 0.0:
        shrink = real(1.0 - lr * h[WEIGHT_DECAY], x)
        for d in range(dim):
            for i in range(lo, hi):
                x[d, i] = x[d, i] * shrink
    use_l2 = (not decoupled) and h[WEIGHT_DECAY] != 0.0
    if h[AMSGRAD] != 0.0:  # amsgrad
        for d in range(dim):
            for i in range(lo, hi):
                gi = g[d, i] + wd * x[d, i] if use_l2 else g[d, i]
                m = b1 * s[0, d, i] + one_m_b1 * gi
                v = b2 * s[1, d, i] + one_m_b2 * gi * gi
                vmax = max(s[2, d, i], v)
                s[0, d, i] = m
                s[1, d, i] = v
                s[2, d, i] = vmax
                x[d, i] -= step_size * m / (math.sqrt(vmax) * inv_sqrt_bc2 + eps)
    elif use_l2:
        for d in range(dim):
            for i in range(lo, hi):
                gi = g[d, i] + wd * x[d, i]
                m = b1 * s[0, d, i] + one_m_b1 * gi
                v = b2 * s[1, d, i] + one_m_b2 * gi * gi
                s[0, d, i] = m
                s[1, d, i] = v
                x[d, i] -= step_size * m / (math.sqrt(v) * inv_sqrt_bc2 + eps)
    else:
        for d in range(dim):
            for i in range(lo, hi):
                gi = g[d, i]
                m = b1 * s[0, d, i] + one_m_b1 * gi
                v = b2 * s[1, d, i] + one_m_b2 * gi * gi
                s[0, d, i] = m
                s[1, d, i] = v
                x[d, i] -= step_size * m / (math.sqrt(v) * inv_sqrt_bc2 + eps)


@math_function
def adam_step(x, g, s, h, lr, t, H, ws, seed, gid0, lo, hi):
    _adam_core(x, g, s, h, lr, t, lo, hi, False)


@math_function
def adamw_step(x, g, s, h, lr, t, H, ws, seed, gid0, lo, hi):
    _adam_core(x, g, s, h, lr, t, lo, hi, True)

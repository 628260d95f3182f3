"""Damped Newton and saddle-free Newton, through a per-particle eigen-decomposition.

* ``newton``: ``x <- x - lr (H + damping I)^-1 g``;
* ``saddle_free_newton`` (Dauphin et al. 2014, "Identifying and attacking the
  saddle point problem in high-dimensional non-convex optimization",
  https://arxiv.org/abs/1406.2572): ``x <- x - lr |H|^-1 g`` with
  ``|H| = V |Lambda| V^T``, regularised as ``1 / (|lambda| + damping)``.

Both use ``H = V Lambda V^T`` from :func:`.linalg.jacobi_eigh`:
``x <- x - lr V diag(f(lambda)) V^T g`` with ``f = 1 / (lambda + damping)``
(Newton) or ``1 / (|lambda| + damping)`` (saddle-free). A singular damped
Hessian gives Inf/NaN, which the kernel reports as a divergence.

h: :data:`HYPER` (damping); no state; scratch :func:`.linalg.eig_rows` rows.
"""

from __future__ import annotations

from .._jit import math_function, real
from .base import hyper_indices
from .linalg import jacobi_eigh

#: Layout of the packed hyperparameters ``h`` (see :class:`~descentlab.optimizers.base.Optimizer`).
HYPER = ("damping",)
(DAMPING,) = hyper_indices(HYPER, "damping")


@math_function
def _eig_newton(x, g, h, lr, H, ws, lo, hi, absolute):
    dim = x.shape[0]
    dd = dim * dim
    vr = 2 * dd + 2
    damping = real(h[DAMPING], x)
    rate = real(lr, x)
    zero = real(0.0, x)
    for r in range(dim):
        for c in range(dim):
            for i in range(lo, hi):
                ws[r * dim + c, i] = H[r, c, i]
    jacobi_eigh(ws, dim, lo, hi)
    # y = diag(f(lambda)) V^T g
    for k in range(dim):
        for i in range(lo, hi):
            ws[vr + k, i] = zero
        for r in range(dim):
            for i in range(lo, hi):
                ws[vr + k, i] += ws[dd + r * dim + k, i] * g[r, i]
        for i in range(lo, hi):
            lam = ws[k * dim + k, i]
            if absolute:
                lam = abs(lam)
            ws[vr + k, i] = ws[vr + k, i] / (lam + damping)
    # z = V y;  x -= lr z
    zr = vr + dim
    for r in range(dim):
        for i in range(lo, hi):
            ws[zr + r, i] = zero
        for k in range(dim):
            for i in range(lo, hi):
                ws[zr + r, i] += ws[dd + r * dim + k, i] * ws[vr + k, i]
        for i in range(lo, hi):
            x[r, i] -= rate * ws[zr + r, i]


@math_function
def newton_step(x, g, s, h, lr, t, H, ws, seed, gid0, lo, hi):
    _eig_newton(x, g, h, lr, H, ws, lo, hi, False)


@math_function
def saddle_free_newton_step(x, g, s, h, lr, t, H, ws, seed, gid0, lo, hi):
    _eig_newton(x, g, h, lr, H, ws, lo, hi, True)

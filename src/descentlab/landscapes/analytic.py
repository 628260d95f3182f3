"""Classic two-dimensional and any-D test functions.

Formulas and known minima follow the Virtual Library of Simulation
Experiments (Surjanovic & Bingham, https://www.sfu.ca/~ssurjano/) unless noted.
Every constant goes through :func:`real` so float32 kernels stay float32.
"""

from __future__ import annotations

import math

from .._jit import math_function, real

# --------------------------------------------------------------------------- Himmelblau
# f(x, y) = (x^2 + y - 11)^2 + (x + y^2 - 7)^2; four minima with f = 0.


@math_function
def himmelblau_value(x, p, w, out, lo, hi):
    for i in range(lo, hi):
        a = x[0, i]
        b = x[1, i]
        u = a * a + b - real(11.0, x)
        v = a + b * b - real(7.0, x)
        out[i] = u * u + v * v


@math_function
def himmelblau_grad(x, p, w, g, lo, hi):
    for i in range(lo, hi):
        a = x[0, i]
        b = x[1, i]
        u = a * a + b - real(11.0, x)
        v = a + b * b - real(7.0, x)
        g[0, i] = real(4.0, x) * a * u + real(2.0, x) * v
        g[1, i] = real(2.0, x) * u + real(4.0, x) * b * v


@math_function
def himmelblau_hess(x, p, w, h, lo, hi):
    for i in range(lo, hi):
        a = x[0, i]
        b = x[1, i]
        h[0, 0, i] = real(12.0, x) * a * a + real(4.0, x) * b - real(42.0, x)
        h[1, 1, i] = real(12.0, x) * b * b + real(4.0, x) * a - real(26.0, x)
        h[0, 1, i] = real(4.0, x) * (a + b)
        h[1, 0, i] = h[0, 1, i]


# --------------------------------------------------------------------------- Rosenbrock
# f(x) = sum_{k<D-1} b (x_{k+1} - x_k^2)^2 + (a - x_k)^2; minimum (a, a^2, ...) for a = 1.
# p = [a, b]


@math_function
def rosenbrock_value(x, p, w, out, lo, hi):
    a = p[0]
    b = p[1]
    for i in range(lo, hi):
        out[i] = real(0.0, x)
    for k in range(x.shape[0] - 1):
        for i in range(lo, hi):
            u = x[k + 1, i] - x[k, i] * x[k, i]
            v = a - x[k, i]
            out[i] += b * u * u + v * v


@math_function
def rosenbrock_grad(x, p, w, g, lo, hi):
    a = p[0]
    b = p[1]
    dim = x.shape[0]
    for i in range(lo, hi):
        g[0, i] = real(0.0, x)
    for k in range(dim - 1):
        for i in range(lo, hi):
            xk = x[k, i]
            u = x[k + 1, i] - xk * xk
            g[k, i] += real(-4.0, x) * b * xk * u - real(2.0, x) * (a - xk)
            g[k + 1, i] = real(2.0, x) * b * u


@math_function
def rosenbrock_hess(x, p, w, h, lo, hi):
    a = p[0]
    b = p[1]
    dim = x.shape[0]
    for r in range(dim):
        for c in range(dim):
            for i in range(lo, hi):
                h[r, c, i] = real(0.0, x)
    for k in range(dim - 1):
        for i in range(lo, hi):
            xk = x[k, i]
            h[k, k, i] += real(12.0, x) * b * xk * xk - real(4.0, x) * b * x[k + 1, i] + real(2.0, x)
            h[k + 1, k + 1, i] += real(2.0, x) * b
            h[k, k + 1, i] = real(-4.0, x) * b * xk
            h[k + 1, k, i] = real(-4.0, x) * b * xk
    _ = a


def rosenbrock_minima(params, dim):  # type: ignore[no-untyped-def]
    import numpy as np

    a = float(params["a"])
    pt = np.full(dim, a)
    pt[1:] = a * a if dim == 2 else pt[1:]
    if dim > 2 and a != 1.0:
        return []  # closed form only for a = 1 (or D = 2)
    return [("global", pt)]


_ = math

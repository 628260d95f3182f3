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
    b = p[1]  # the Hessian does not depend on a = p[0]
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


def rosenbrock_minima(params, dim):  # type: ignore[no-untyped-def]
    import numpy as np

    a = float(params["a"])
    pt = np.full(dim, a)
    pt[1:] = a * a if dim == 2 else pt[1:]
    if dim > 2 and a != 1.0:
        return []  # closed form only for a = 1 (or D = 2)
    return [("global", pt)]


# --------------------------------------------------------------------------- quadratic bowl
# f(x) = 0.5 x^T A x, A = Q diag(lam) Q^T (any D). p = A flattened row-major (D*D),
# packed by :func:`quadratic_pack`.


@math_function
def quadratic_value(x, p, w, out, lo, hi):
    dim = x.shape[0]
    for i in range(lo, hi):
        out[i] = real(0.0, x)
    for r in range(dim):
        for c in range(dim):
            arc = real(0.5, x) * p[r * dim + c]
            for i in range(lo, hi):
                out[i] += arc * x[r, i] * x[c, i]


@math_function
def quadratic_grad(x, p, w, g, lo, hi):
    dim = x.shape[0]
    for r in range(dim):
        for i in range(lo, hi):
            g[r, i] = real(0.0, x)
        for c in range(dim):
            arc = p[r * dim + c]
            for i in range(lo, hi):
                g[r, i] += arc * x[c, i]


@math_function
def quadratic_hess(x, p, w, h, lo, hi):
    dim = x.shape[0]
    for r in range(dim):
        for c in range(dim):
            arc = p[r * dim + c]
            for i in range(lo, hi):
                h[r, c, i] = arc


def quadratic_matrix(params, dim):  # type: ignore[no-untyped-def]
    """A = Q diag(lam) Q^T: eigenvalues log-spaced from 1 to ``condition``; Q a Givens
    rotation by ``rotation`` radians in every plane (2k, 2k+1) (the last axis of an odd D
    is not rotated)."""
    import numpy as np

    cond = float(params["condition"])
    if not cond >= 1.0 or not math.isfinite(cond):
        err = ValueError(f"condition must be a finite number >= 1, got {cond!r}")
        err.field = "condition"  # type: ignore[attr-defined]
        raise err
    theta = float(params["rotation"])
    lam = np.logspace(0.0, math.log10(cond), dim) if dim > 1 else np.ones(1)
    q = np.eye(dim)
    cs, sn = math.cos(theta), math.sin(theta)
    for k in range(0, dim - 1, 2):
        q[k, k], q[k, k + 1], q[k + 1, k], q[k + 1, k + 1] = cs, -sn, sn, cs
    a = (q * lam) @ q.T
    return 0.5 * (a + a.T)


def quadratic_pack(params, dim):  # type: ignore[no-untyped-def]
    return quadratic_matrix(params, dim).ravel()


# --------------------------------------------------------------------------- six-hump camel
# f(x, y) = (4 - 2.1 x^2 + x^4 / 3) x^2 + x y + (-4 + 4 y^2) y^2


@math_function
def six_hump_camel_value(x, p, w, out, lo, hi):
    for i in range(lo, hi):
        a = x[0, i]
        b = x[1, i]
        a2 = a * a
        b2 = b * b
        out[i] = (
            (real(4.0, x) - real(2.1, x) * a2 + a2 * a2 / real(3.0, x)) * a2
            + a * b
            + (real(-4.0, x) + real(4.0, x) * b2) * b2
        )


@math_function
def six_hump_camel_grad(x, p, w, g, lo, hi):
    for i in range(lo, hi):
        a = x[0, i]
        b = x[1, i]
        a2 = a * a
        g[0, i] = real(8.0, x) * a - real(8.4, x) * a2 * a + real(2.0, x) * a2 * a2 * a + b
        g[1, i] = a - real(8.0, x) * b + real(16.0, x) * b * b * b


@math_function
def six_hump_camel_hess(x, p, w, h, lo, hi):
    for i in range(lo, hi):
        a = x[0, i]
        b = x[1, i]
        a2 = a * a
        h[0, 0, i] = real(8.0, x) - real(25.2, x) * a2 + real(10.0, x) * a2 * a2
        h[0, 1, i] = real(1.0, x)
        h[1, 0, i] = real(1.0, x)
        h[1, 1, i] = real(-8.0, x) + real(48.0, x) * b * b


# --------------------------------------------------------------------------- Rastrigin
# f(x) = A D + sum (x_k^2 - A cos(2 pi x_k)); p = [A]


@math_function
def rastrigin_value(x, p, w, out, lo, hi):
    amp = p[0]
    tau = real(2.0 * math.pi, x)
    for i in range(lo, hi):
        out[i] = real(0.0, x)
    for k in range(x.shape[0]):
        for i in range(lo, hi):
            xk = x[k, i]
            out[i] += amp + xk * xk - amp * math.cos(tau * xk)


@math_function
def rastrigin_grad(x, p, w, g, lo, hi):
    amp = p[0]
    tau = real(2.0 * math.pi, x)
    for k in range(x.shape[0]):
        for i in range(lo, hi):
            xk = x[k, i]
            g[k, i] = real(2.0, x) * xk + tau * amp * math.sin(tau * xk)


@math_function
def rastrigin_hess(x, p, w, h, lo, hi):
    amp = p[0]
    tau = real(2.0 * math.pi, x)
    dim = x.shape[0]
    for r in range(dim):
        for c in range(dim):
            if r == c:
                for i in range(lo, hi):
                    h[r, c, i] = real(2.0, x) + tau * tau * amp * math.cos(tau * x[r, i])
            else:
                for i in range(lo, hi):
                    h[r, c, i] = real(0.0, x)


# --------------------------------------------------------------------------- Ackley
# f(x) = -a exp(-b s) - exp(sum cos(c x_k) / D) + a + e,  s = sqrt(sum x_k^2 / D); p = [a, b, c].
# f is not differentiable at 0 (a cone tip): the s-term of the gradient and Hessian is taken as
# 0 there (gradient 0 by symmetry, no NaN). Scratch rows: w[0] = coefficient of x_k in the
# gradient, w[1] = (c/D) exp(mean cos), w[2] = coefficient of x_k x_j in the Hessian.


@math_function
def ackley_value(x, p, w, out, lo, hi):
    a = p[0]
    b = p[1]
    c = p[2]
    dim = x.shape[0]
    inv_d = real(1.0, x) / real(dim, x)
    for i in range(lo, hi):
        w[0, i] = real(0.0, x)
        w[1, i] = real(0.0, x)
    for k in range(dim):
        for i in range(lo, hi):
            xk = x[k, i]
            w[0, i] += xk * xk
            w[1, i] += math.cos(c * xk)
    for i in range(lo, hi):
        s = math.sqrt(w[0, i] * inv_d)
        out[i] = -a * math.exp(-b * s) - math.exp(w[1, i] * inv_d) + a + real(math.e, x)


@math_function
def _ackley_coefficients(x, p, w, lo, hi):
    a = p[0]
    b = p[1]
    c = p[2]
    dim = x.shape[0]
    inv_d = real(1.0, x) / real(dim, x)
    for i in range(lo, hi):
        w[0, i] = real(0.0, x)
        w[1, i] = real(0.0, x)
    for k in range(dim):
        for i in range(lo, hi):
            xk = x[k, i]
            w[0, i] += xk * xk
            w[1, i] += math.cos(c * xk)
    for i in range(lo, hi):
        s = math.sqrt(w[0, i] * inv_d)
        e = math.exp(-b * s)
        pos = s > real(0.0, x)
        s_safe = s if pos else real(1.0, x)
        t = a * b * e * inv_d / s_safe
        w[0, i] = t if pos else real(0.0, x)
        w[2, i] = -t * (b * s + real(1.0, x)) * inv_d / (s_safe * s_safe) if pos else real(0.0, x)
        w[1, i] = c * inv_d * math.exp(w[1, i] * inv_d)


@math_function
def ackley_grad(x, p, w, g, lo, hi):
    c = p[2]
    _ackley_coefficients(x, p, w, lo, hi)
    for k in range(x.shape[0]):
        for i in range(lo, hi):
            xk = x[k, i]
            g[k, i] = w[0, i] * xk + w[1, i] * math.sin(c * xk)


@math_function
def ackley_hess(x, p, w, h, lo, hi):
    c = p[2]
    dim = x.shape[0]
    inv_d = real(1.0, x) / real(dim, x)
    _ackley_coefficients(x, p, w, lo, hi)
    for r in range(dim):
        for q in range(dim):
            if r == q:
                for i in range(lo, hi):
                    xr = x[r, i]
                    sr = math.sin(c * xr)
                    h[r, q, i] = (w[0, i] + w[2, i] * xr * xr + w[1, i] * c * math.cos(c * xr)
                                  - w[1, i] * c * inv_d * sr * sr)  # fmt: skip
            else:
                for i in range(lo, hi):
                    # products grouped symmetrically so that h[r, q] == h[q, r] exactly
                    h[r, q, i] = (w[2, i] * (x[r, i] * x[q, i])
                                  - w[1, i] * c * inv_d * (math.sin(c * x[r, i]) * math.sin(c * x[q, i])))  # fmt: skip


# --------------------------------------------------------------------------- Styblinski-Tang
# f(x) = 0.5 sum (x_k^4 - 16 x_k^2 + 5 x_k)


@math_function
def styblinski_tang_value(x, p, w, out, lo, hi):
    for i in range(lo, hi):
        out[i] = real(0.0, x)
    for k in range(x.shape[0]):
        for i in range(lo, hi):
            xk = x[k, i]
            x2 = xk * xk
            out[i] += real(0.5, x) * (x2 * x2 - real(16.0, x) * x2 + real(5.0, x) * xk)


@math_function
def styblinski_tang_grad(x, p, w, g, lo, hi):
    for k in range(x.shape[0]):
        for i in range(lo, hi):
            xk = x[k, i]
            g[k, i] = real(2.0, x) * xk * xk * xk - real(16.0, x) * xk + real(2.5, x)


@math_function
def styblinski_tang_hess(x, p, w, h, lo, hi):
    dim = x.shape[0]
    for r in range(dim):
        for c in range(dim):
            if r == c:
                for i in range(lo, hi):
                    h[r, c, i] = real(6.0, x) * x[r, i] * x[r, i] - real(16.0, x)
            else:
                for i in range(lo, hi):
                    h[r, c, i] = real(0.0, x)


def _styblinski_tang_roots():  # type: ignore[no-untyped-def]
    """The three roots of 2 t^3 - 16 t + 2.5 = 0, ascending (Newton-polished)."""
    import numpy as np

    roots = np.sort(np.roots([2.0, 0.0, -16.0, 2.5]).real)
    for _ in range(3):
        roots = roots - (2.0 * roots**3 - 16.0 * roots + 2.5) / (6.0 * roots**2 - 16.0)
    return roots


def styblinski_tang_minima(params, dim):  # type: ignore[no-untyped-def]
    """The global minimum (all -2.9035); for D <= 8 also the other 2^D - 1 local minima."""
    import itertools

    import numpy as np

    lo_root, _, hi_root = _styblinski_tang_roots()
    out = [("global", np.full(dim, lo_root))]
    if dim <= 8:
        for combo in itertools.product((lo_root, hi_root), repeat=dim):
            if any(v == hi_root for v in combo):
                name = "local (" + ", ".join("-" if v == lo_root else "+" for v in combo) + ")"
                out.append((name, np.array(combo)))
    return out


# --------------------------------------------------------------------------- Beale
# f(x, y) = (1.5 - x + x y)^2 + (2.25 - x + x y^2)^2 + (2.625 - x + x y^3)^2; minimum (3, 0.5)


@math_function
def beale_value(x, p, w, out, lo, hi):
    for i in range(lo, hi):
        a = x[0, i]
        b = x[1, i]
        t1 = real(1.5, x) - a + a * b
        t2 = real(2.25, x) - a + a * b * b
        t3 = real(2.625, x) - a + a * b * b * b
        out[i] = t1 * t1 + t2 * t2 + t3 * t3


@math_function
def beale_grad(x, p, w, g, lo, hi):
    for i in range(lo, hi):
        a = x[0, i]
        b = x[1, i]
        b2 = b * b
        b3 = b2 * b
        t1 = real(1.5, x) - a + a * b
        t2 = real(2.25, x) - a + a * b2
        t3 = real(2.625, x) - a + a * b3
        g[0, i] = real(2.0, x) * (t1 * (b - real(1.0, x)) + t2 * (b2 - real(1.0, x)) + t3 * (b3 - real(1.0, x)))
        g[1, i] = real(2.0, x) * a * (t1 + real(2.0, x) * t2 * b + real(3.0, x) * t3 * b2)


@math_function
def beale_hess(x, p, w, h, lo, hi):
    for i in range(lo, hi):
        a = x[0, i]
        b = x[1, i]
        b2 = b * b
        b3 = b2 * b
        t2 = real(2.25, x) - a + a * b2
        t3 = real(2.625, x) - a + a * b3
        t1 = real(1.5, x) - a + a * b
        u1 = b - real(1.0, x)
        u2 = b2 - real(1.0, x)
        u3 = b3 - real(1.0, x)
        h[0, 0, i] = real(2.0, x) * (u1 * u1 + u2 * u2 + u3 * u3)
        hxy = real(2.0, x) * (a * u1 + t1 + real(2.0, x) * a * b * u2 + real(2.0, x) * b * t2
                              + real(3.0, x) * a * b2 * u3 + real(3.0, x) * b2 * t3)  # fmt: skip
        h[0, 1, i] = hxy
        h[1, 0, i] = hxy
        h[1, 1, i] = real(2.0, x) * (a * a + real(4.0, x) * a * a * b2 + real(2.0, x) * a * t2
                                     + real(9.0, x) * a * a * b2 * b2 + real(6.0, x) * a * b * t3)  # fmt: skip


# --------------------------------------------------------------------------- Muller-Brown
# V(x, y) = sum_k A_k exp(a_k (x - x0_k)^2 + b_k (x - x0_k)(y - y0_k) + c_k (y - y0_k)^2)
# p = [A(4), a(4), b(4), c(4), x0(4), y0(4)] (Muller & Brown 1979), see :func:`muller_brown_pack`.

MULLER_BROWN = (
    (-200.0, -100.0, -170.0, 15.0),
    (-1.0, -1.0, -6.5, 0.7),
    (0.0, 0.0, 11.0, 0.6),
    (-10.0, -10.0, -6.5, 0.7),
    (1.0, 0.0, -0.5, -1.0),
    (0.0, 0.5, 1.5, 1.0),
)


def muller_brown_pack(params, dim):  # type: ignore[no-untyped-def]
    import numpy as np

    return np.array(MULLER_BROWN, dtype=np.float64).ravel()


@math_function
def muller_brown_value(x, p, w, out, lo, hi):
    for i in range(lo, hi):
        out[i] = real(0.0, x)
    for k in range(4):
        amp = p[k]
        a = p[4 + k]
        b = p[8 + k]
        c = p[12 + k]
        x0 = p[16 + k]
        y0 = p[20 + k]
        for i in range(lo, hi):
            dx = x[0, i] - x0
            dy = x[1, i] - y0
            out[i] += amp * math.exp(a * dx * dx + b * dx * dy + c * dy * dy)


@math_function
def muller_brown_grad(x, p, w, g, lo, hi):
    for i in range(lo, hi):
        g[0, i] = real(0.0, x)
        g[1, i] = real(0.0, x)
    for k in range(4):
        amp = p[k]
        a = p[4 + k]
        b = p[8 + k]
        c = p[12 + k]
        x0 = p[16 + k]
        y0 = p[20 + k]
        for i in range(lo, hi):
            dx = x[0, i] - x0
            dy = x[1, i] - y0
            e = amp * math.exp(a * dx * dx + b * dx * dy + c * dy * dy)
            g[0, i] += e * (real(2.0, x) * a * dx + b * dy)
            g[1, i] += e * (b * dx + real(2.0, x) * c * dy)


@math_function
def muller_brown_hess(x, p, w, h, lo, hi):
    for i in range(lo, hi):
        h[0, 0, i] = real(0.0, x)
        h[0, 1, i] = real(0.0, x)
        h[1, 1, i] = real(0.0, x)
    for k in range(4):
        amp = p[k]
        a = p[4 + k]
        b = p[8 + k]
        c = p[12 + k]
        x0 = p[16 + k]
        y0 = p[20 + k]
        for i in range(lo, hi):
            dx = x[0, i] - x0
            dy = x[1, i] - y0
            e = amp * math.exp(a * dx * dx + b * dx * dy + c * dy * dy)
            qx = real(2.0, x) * a * dx + b * dy
            qy = b * dx + real(2.0, x) * c * dy
            h[0, 0, i] += e * (qx * qx + real(2.0, x) * a)
            h[0, 1, i] += e * (qx * qy + b)
            h[1, 1, i] += e * (qy * qy + real(2.0, x) * c)
    for i in range(lo, hi):
        h[1, 0, i] = h[0, 1, i]


# --------------------------------------------------------------------------- saddles
# saddle: f = x^2 - y^2;  monkey saddle: f = x^3 - 3 x y^2 (degenerate: Hessian 0 at 0)


@math_function
def saddle_value(x, p, w, out, lo, hi):
    for i in range(lo, hi):
        out[i] = x[0, i] * x[0, i] - x[1, i] * x[1, i]


@math_function
def saddle_grad(x, p, w, g, lo, hi):
    for i in range(lo, hi):
        g[0, i] = real(2.0, x) * x[0, i]
        g[1, i] = real(-2.0, x) * x[1, i]


@math_function
def saddle_hess(x, p, w, h, lo, hi):
    for i in range(lo, hi):
        h[0, 0, i] = real(2.0, x)
        h[0, 1, i] = real(0.0, x)
        h[1, 0, i] = real(0.0, x)
        h[1, 1, i] = real(-2.0, x)


@math_function
def monkey_saddle_value(x, p, w, out, lo, hi):
    for i in range(lo, hi):
        a = x[0, i]
        b = x[1, i]
        out[i] = a * a * a - real(3.0, x) * a * b * b


@math_function
def monkey_saddle_grad(x, p, w, g, lo, hi):
    for i in range(lo, hi):
        a = x[0, i]
        b = x[1, i]
        g[0, i] = real(3.0, x) * (a * a - b * b)
        g[1, i] = real(-6.0, x) * a * b


@math_function
def monkey_saddle_hess(x, p, w, h, lo, hi):
    for i in range(lo, hi):
        a = x[0, i]
        b = x[1, i]
        h[0, 0, i] = real(6.0, x) * a
        h[0, 1, i] = real(-6.0, x) * b
        h[1, 0, i] = real(-6.0, x) * b
        h[1, 1, i] = real(-6.0, x) * a


# --------------------------------------------------------------------------- double well
# f(x) = h (x_0^2 - 1)^2 + 0.5 sum_{k>=1} x_k^2 (any D >= 1); p = [h]


@math_function
def double_well_value(x, p, w, out, lo, hi):
    barrier = p[0]
    for i in range(lo, hi):
        u = x[0, i] * x[0, i] - real(1.0, x)
        out[i] = barrier * u * u
    for k in range(1, x.shape[0]):
        for i in range(lo, hi):
            out[i] += real(0.5, x) * x[k, i] * x[k, i]


@math_function
def double_well_grad(x, p, w, g, lo, hi):
    barrier = p[0]
    for i in range(lo, hi):
        a = x[0, i]
        g[0, i] = real(4.0, x) * barrier * a * (a * a - real(1.0, x))
    for k in range(1, x.shape[0]):
        for i in range(lo, hi):
            g[k, i] = x[k, i]


@math_function
def double_well_hess(x, p, w, h, lo, hi):
    barrier = p[0]
    dim = x.shape[0]
    for r in range(dim):
        for c in range(dim):
            v = real(1.0, x) if r == c else real(0.0, x)
            for i in range(lo, hi):
                h[r, c, i] = v
    for i in range(lo, hi):
        a = x[0, i]
        h[0, 0, i] = barrier * (real(12.0, x) * a * a - real(4.0, x))


# --------------------------------------------------------------------------- product loss
# L(w1, w2) = (y - w1 w2 x)^2 (one sample of the product model); p = [x, y].
# Minima: the curve w1 w2 = y / x; the origin is a saddle (Hessian eigenvalues -2xy, +2xy).


@math_function
def product_value(x, p, w, out, lo, hi):
    sx = p[0]
    sy = p[1]
    for i in range(lo, hi):
        r = sy - x[0, i] * x[1, i] * sx
        out[i] = r * r


@math_function
def product_grad(x, p, w, g, lo, hi):
    sx = p[0]
    sy = p[1]
    for i in range(lo, hi):
        a = x[0, i]
        b = x[1, i]
        r = sy - a * b * sx
        g[0, i] = real(-2.0, x) * sx * b * r
        g[1, i] = real(-2.0, x) * sx * a * r


@math_function
def product_hess(x, p, w, h, lo, hi):
    sx = p[0]
    sy = p[1]
    for i in range(lo, hi):
        a = x[0, i]
        b = x[1, i]
        r = sy - a * b * sx
        h[0, 0, i] = real(2.0, x) * sx * sx * b * b
        h[1, 1, i] = real(2.0, x) * sx * sx * a * a
        hxy = real(-2.0, x) * sx * r + real(2.0, x) * sx * sx * a * b
        h[0, 1, i] = hxy
        h[1, 0, i] = hxy


# --------------------------------------------------------------------------- random landscape
# f(x) = sum_k a_k cos(w_k . x + b_k) + 0.5 c |x|^2 (random Fourier features + a weak bowl).
# p = [K, c, W (K x D row-major), b (K), a (K)], drawn by :func:`random_pack` from
# numpy.random.default_rng(seed): W ~ N(0, 1 / length_scale^2), then b ~ U(0, 2 pi), then
# a ~ N(0, 1) / sqrt(K). One scratch row holds the per-feature phase of each particle.


def random_pack(params, dim):  # type: ignore[no-untyped-def]
    import numpy as np

    k = int(params["features"])
    if k < 1:
        err = ValueError(f"features must be >= 1, got {k}")
        err.field = "features"  # type: ignore[attr-defined]
        raise err
    ell = float(params["length_scale"])
    if not ell > 0.0:
        err = ValueError(f"length_scale must be > 0, got {ell}")
        err.field = "length_scale"  # type: ignore[attr-defined]
        raise err
    seed = int(params["seed"])
    if seed < 0:
        err = ValueError(f"seed must be >= 0, got {seed}")
        err.field = "seed"  # type: ignore[attr-defined]
        raise err
    rng = np.random.default_rng(seed)
    wk = rng.normal(0.0, 1.0 / ell, size=(k, dim))
    bk = rng.uniform(0.0, 2.0 * math.pi, size=k)
    ak = rng.normal(0.0, 1.0, size=k) / math.sqrt(k)
    return np.concatenate([[float(k), float(params["c"])], wk.ravel(), bk, ak])


@math_function
def _random_phase(x, p, w, k, lo, hi):
    dim = x.shape[0]
    nf = int(p[0])
    wo = 2 + k * dim
    bk = p[2 + nf * dim + k]
    for i in range(lo, hi):
        w[0, i] = bk
    for d in range(dim):
        wkd = p[wo + d]
        for i in range(lo, hi):
            w[0, i] += wkd * x[d, i]


@math_function
def random_value(x, p, w, out, lo, hi):
    dim = x.shape[0]
    nf = int(p[0])
    half_c = real(0.5, x) * p[1]
    for i in range(lo, hi):
        out[i] = real(0.0, x)
    for d in range(dim):
        for i in range(lo, hi):
            out[i] += half_c * x[d, i] * x[d, i]
    for k in range(nf):
        ak = p[2 + nf * dim + nf + k]
        _random_phase(x, p, w, k, lo, hi)
        for i in range(lo, hi):
            out[i] += ak * math.cos(w[0, i])


@math_function
def random_grad(x, p, w, g, lo, hi):
    dim = x.shape[0]
    nf = int(p[0])
    c = p[1]
    for d in range(dim):
        for i in range(lo, hi):
            g[d, i] = c * x[d, i]
    for k in range(nf):
        ak = p[2 + nf * dim + nf + k]
        wo = 2 + k * dim
        _random_phase(x, p, w, k, lo, hi)
        for i in range(lo, hi):
            w[0, i] = ak * math.sin(w[0, i])
        for d in range(dim):
            wkd = p[wo + d]
            for i in range(lo, hi):
                g[d, i] -= wkd * w[0, i]


@math_function
def random_hess(x, p, w, h, lo, hi):
    dim = x.shape[0]
    nf = int(p[0])
    c = p[1]
    for r in range(dim):
        for q in range(dim):
            v = c if r == q else real(0.0, x)
            for i in range(lo, hi):
                h[r, q, i] = v
    for k in range(nf):
        ak = p[2 + nf * dim + nf + k]
        wo = 2 + k * dim
        _random_phase(x, p, w, k, lo, hi)
        for i in range(lo, hi):
            w[0, i] = ak * math.cos(w[0, i])
        for r in range(dim):
            for q in range(dim):
                wrq = p[wo + r] * p[wo + q]
                for i in range(lo, hi):
                    h[r, q, i] -= wrq * w[0, i]

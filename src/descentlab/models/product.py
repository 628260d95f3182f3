"""The product model ``y_hat = w1 * w2 * x``: its loss and gradient per sample."""

from __future__ import annotations

from .._jit import real
from .packing import H_N, _columns, _helper, data_offsets

# --------------------------------------------------------------------------- product model
# yhat = w1 w2 x (one input, one output), loss mean (yhat - y)^2.


@_helper
def _product_sample(x, g, i, xs, ys, scale):  # type: ignore[no-untyped-def]
    """g[:, i] += scale * gradient of (w1 w2 xs - ys)^2 / 2 (scale = 2 / samples)."""
    r = (x[0, i] * x[1, i] * xs - ys) * scale
    g[0, i] += r * x[1, i] * xs
    g[1, i] += r * x[0, i] * xs


@_helper
def _product_value(x, p, out, lo, hi):  # type: ignore[no-untyped-def]
    ulo, uhi = _columns(lo, hi)
    zero = real(0.0, x)
    n = int(p[H_N])
    _, _, _, o_x, o_y = data_offsets(p)
    for i in range(ulo, uhi):
        out[i] = zero
    for k in range(n):
        xs = p[o_x + k]
        ys = p[o_y + k]
        for i in range(ulo, uhi):
            d = x[0, i] * x[1, i] * xs - ys
            out[i] += d * d
    total = real(n, x)
    for i in range(ulo, uhi):
        out[i] /= total

"""The backward pass of a model: parameter gradients, layer by layer, top down."""

from __future__ import annotations

from .._jit import real
from .packing import (
    _BN_ACCUMULATE,
    _BN_KNOWN,
    ACT_RELU,
    ACT_SIGMOID,
    ACT_TANH,
    H_BN,
    H_CHUNK,
    H_LAYERS,
    H_WIDTHS,
    _columns,
    _helper,
    data_offsets,
    param_offsets,
    scratch_layout,
)

# --------------------------------------------------------------------------- backward pass


@_helper
def _backward_layer(x, p, w, g, lo, hi, layer, m, params, to_input):  # type: ignore[no-untyped-def]
    """From dLoss/da in A(layer): add dW, db to g (``params``) and put dLoss/dh_{layer-1} in DH (``to_input``).

    Sums over samples (dW) and over outputs (dh) go four terms at a time, in a fixed order.
    """
    ulo, uhi = _columns(lo, hi)
    zero = real(0.0, x)
    c = int(p[H_CHUNK])
    fan_in = int(p[H_WIDTHS + layer - 1])
    fan_out = int(p[H_WIDTHS + layer])
    w_off, b_off, _, _ = param_offsets(p, layer)
    a_in = scratch_layout(p, layer - 1)[0]
    a_out, _, _, dh, _ = scratch_layout(p, layer)
    if params:
        s_quads = m // 4
        for o in range(fan_out):
            rd = a_out + o * c
            rb = b_off + o
            for s in range(m):
                for i in range(ulo, uhi):
                    g[rb, i] += w[rd + s, i]
            for j in range(fan_in):
                rw = w_off + o * fan_in + j
                rh = a_in + j * c
                for q in range(s_quads):
                    d0 = rd + 4 * q
                    h0 = rh + 4 * q
                    for i in range(ulo, uhi):
                        g[rw, i] += (w[d0, i] * w[h0, i] + w[d0 + 1, i] * w[h0 + 1, i]) + (
                            w[d0 + 2, i] * w[h0 + 2, i] + w[d0 + 3, i] * w[h0 + 3, i]
                        )
                for s in range(4 * s_quads, m):
                    for i in range(ulo, uhi):
                        g[rw, i] += w[rd + s, i] * w[rh + s, i]
    if to_input:
        o_quads = fan_out // 4
        for j in range(fan_in):
            rdh = dh + j * c
            for s in range(m):
                for i in range(ulo, uhi):
                    w[rdh + s, i] = zero
            for q in range(o_quads):
                rw = w_off + 4 * q * fan_in + j  # W[4q, j]; W[4q + k, j] is k * fan_in further
                rd = a_out + 4 * q * c
                for s in range(m):
                    r0 = rd + s
                    for i in range(ulo, uhi):
                        w[rdh + s, i] += (x[rw, i] * w[r0, i] + x[rw + fan_in, i] * w[r0 + c, i]) + (
                            x[rw + 2 * fan_in, i] * w[r0 + 2 * c, i] + x[rw + 3 * fan_in, i] * w[r0 + 3 * c, i]
                        )
            for o in range(4 * o_quads, fan_out):
                rw = w_off + o * fan_in + j
                rd = a_out + o * c
                for s in range(m):
                    for i in range(ulo, uhi):
                        w[rdh + s, i] += x[rw, i] * w[rd + s, i]


@_helper
def _activation_backward(p, w, lo, hi, layer, m, into_dh):  # type: ignore[no-untyped-def]
    """dz = DH * act'(h) with h = A(layer); written to DH (``into_dh``, for batch norm) or to A(layer)."""
    ulo, uhi = _columns(lo, hi)
    c = int(p[H_CHUNK])
    width = int(p[H_WIDTHS + layer])
    code = int(p[data_offsets(p)[0] + layer - 1])
    a, _, _, dh, _ = scratch_layout(p, layer)
    dst = dh if into_dh else a
    zero = real(0.0, w)
    one = real(1.0, w)
    for u in range(width):
        ra = a + u * c
        rd = dh + u * c
        rz = dst + u * c
        if code == ACT_TANH:
            for s in range(m):
                for i in range(ulo, uhi):
                    h = w[ra + s, i]
                    w[rz + s, i] = w[rd + s, i] * (one - h * h)
        elif code == ACT_RELU:
            for s in range(m):
                for i in range(ulo, uhi):
                    w[rz + s, i] = w[rd + s, i] if w[ra + s, i] > zero else zero
        elif code == ACT_SIGMOID:
            for s in range(m):
                for i in range(ulo, uhi):
                    h = w[ra + s, i]
                    w[rz + s, i] = w[rd + s, i] * (h * (one - h))
        elif not into_dh:
            for s in range(m):
                for i in range(ulo, uhi):
                    w[rz + s, i] = w[rd + s, i]


@_helper
def _bn_backward(x, p, w, g, lo, hi, layer, m, n_set, mode):  # type: ignore[no-untyped-def]
    """Through batch normalization: dz (in DH) -> dLoss/da into A(layer); gamma/beta gradients into g.

    With n = n_set samples in the statistics, sums over them
    ``g_beta = sum dz`` and ``g_gamma = sum dz xhat``, and
    ``da = gamma inv_std (dz - g_beta / n - xhat g_gamma / n)``.
    """
    ulo, uhi = _columns(lo, hi)
    c = int(p[H_CHUNK])
    width = int(p[H_WIDTHS + layer])
    a, xh, st, dh, _ = scratch_layout(p, layer)
    _, _, r_gamma, r_beta = param_offsets(p, layer)
    inv_n = real(1.0, x) / real(n_set, x)
    for u in range(width):
        rd = dh + u * c
        rx = xh + u * c
        ra = a + u * c
        rg = r_gamma + u
        rb = r_beta + u
        rv = st + width + u
        if mode != _BN_KNOWN:
            for s in range(m):
                for i in range(ulo, uhi):
                    dz = w[rd + s, i]
                    g[rb, i] += dz
                    g[rg, i] += dz * w[rx + s, i]
        if mode != _BN_ACCUMULATE:
            for s in range(m):
                for i in range(ulo, uhi):
                    k = x[rg, i] * w[rv, i]
                    w[ra + s, i] = k * (w[rd + s, i] - g[rb, i] * inv_n - w[rx + s, i] * (g[rg, i] * inv_n))


@_helper
def _backward(x, p, w, g, lo, hi, m, n_set, target, bn_mode):  # type: ignore[no-untyped-def]
    """Backpropagate dLoss/dlogits (A(L)) through the chunk.

    ``target == 0``: all layers, parameter gradients added to g, batch norm in
    ``bn_mode`` (_BN_BATCH or _BN_KNOWN). ``target = k >= 1``: only down to
    hidden layer k's batch normalization, whose sums are accumulated in g
    (layers above use their known sums); no other gradient is touched.
    """
    n_layers = int(p[H_LAYERS])
    bn = int(p[H_BN])
    params = target == 0
    for layer in range(n_layers, 0, -1):
        to_input = layer > 1 and layer - 1 >= target
        _backward_layer(x, p, w, g, lo, hi, layer, m, params, to_input)
        if not to_input:
            break
        _activation_backward(p, w, lo, hi, layer - 1, m, bn != 0)
        if bn != 0:
            mode = _BN_ACCUMULATE if layer - 1 == target else bn_mode
            _bn_backward(x, p, w, g, lo, hi, layer - 1, m, n_set, mode)
        if layer - 1 == target:
            break

"""The forward pass of a model over a chunk of samples: affine maps, activations, batch normalization."""

from __future__ import annotations

import math

from .._jit import real
from .packing import (
    ACT_RELU,
    ACT_SIGMOID,
    ACT_TANH,
    BN_EPS,
    H_BN,
    H_CHUNK,
    H_LAYERS,
    H_N,
    H_N_IN,
    H_WIDTHS,
    _columns,
    _helper,
    data_offsets,
    param_offsets,
    scratch_layout,
)
from .vecmath import sigmoid_vec, tanh_vec

# --------------------------------------------------------------------------- forward pass


@_helper
def _fill_range(w, lo, hi, first, m):  # type: ignore[no-untyped-def]
    """Sample index rows: chunk position s holds sample ``first + s`` for every particle."""
    ulo, uhi = _columns(lo, hi)
    for s in range(m):
        for i in range(ulo, uhi):
            w[s, i] = first + s


@_helper
def _fill_inputs(p, w, lo, hi, m):  # type: ignore[no-untyped-def]
    """A(0): the inputs of the chunk's samples (gathered per particle)."""
    ulo, uhi = _columns(lo, hi)
    c = int(p[H_CHUNK])
    n_in = int(p[H_N_IN])
    o_x = data_offsets(p)[3]
    a0 = scratch_layout(p, 0)[0]
    for j in range(n_in):
        r = a0 + j * c
        for s in range(m):
            for i in range(ulo, uhi):
                w[r + s, i] = p[o_x + int(w[s, i]) * n_in + j]


@_helper
def _affine(x, p, w, lo, hi, layer, m):  # type: ignore[no-untyped-def]
    """A(layer) = W A(layer - 1) + b on the chunk's m samples.

    Inputs are taken four at a time (fewer loads and stores of the accumulator
    row, fewer short particle loops); the summation order is fixed.
    """
    ulo, uhi = _columns(lo, hi)
    c = int(p[H_CHUNK])
    fan_in = int(p[H_WIDTHS + layer - 1])
    fan_out = int(p[H_WIDTHS + layer])
    w_off, b_off, _, _ = param_offsets(p, layer)
    a_in = scratch_layout(p, layer - 1)[0]
    a_out = scratch_layout(p, layer)[0]
    quads = fan_in // 4
    for o in range(fan_out):
        ro = a_out + o * c
        rb = b_off + o
        rw0 = w_off + o * fan_in
        for s in range(m):
            for i in range(ulo, uhi):
                w[ro + s, i] = x[rb, i]
        for q in range(quads):
            rw = rw0 + 4 * q
            rj = a_in + 4 * q * c
            for s in range(m):
                r0 = rj + s
                for i in range(ulo, uhi):
                    w[ro + s, i] += (x[rw, i] * w[r0, i] + x[rw + 1, i] * w[r0 + c, i]) + (
                        x[rw + 2, i] * w[r0 + 2 * c, i] + x[rw + 3, i] * w[r0 + 3 * c, i]
                    )
        for j in range(4 * quads, fan_in):
            rw = rw0 + j
            rj = a_in + j * c
            for s in range(m):
                for i in range(ulo, uhi):
                    w[ro + s, i] += x[rw, i] * w[rj + s, i]


@_helper
def _activate(p, w, lo, hi, layer, m):  # type: ignore[no-untyped-def]
    """A(layer) <- act(A(layer)) in place (the layer's activation)."""
    ulo, uhi = _columns(lo, hi)
    c = int(p[H_CHUNK])
    width = int(p[H_WIDTHS + layer])
    code = int(p[data_offsets(p)[0] + layer - 1])
    a = scratch_layout(p, layer)[0]
    zero = real(0.0, w)
    for u in range(width):
        r = a + u * c
        if code == ACT_TANH:
            for s in range(m):
                for i in range(ulo, uhi):
                    w[r + s, i] = tanh_vec(w[r + s, i])
        elif code == ACT_RELU:
            for s in range(m):
                for i in range(ulo, uhi):
                    v = w[r + s, i]
                    w[r + s, i] = zero if v < zero else v  # NaN stays NaN
        elif code == ACT_SIGMOID:
            for s in range(m):
                for i in range(ulo, uhi):
                    w[r + s, i] = sigmoid_vec(w[r + s, i])


@_helper
def _mean_m2(x, w, lo, hi, r, m, row_mean, row_m2):  # type: ignore[no-untyped-def]
    """w[row_mean] <- mean and w[row_m2] <- sum of squared deviations of rows r .. r+m-1 (two-pass)."""
    ulo, uhi = _columns(lo, hi)
    zero = real(0.0, x)
    inv_m = real(1.0, x) / real(m, x)
    for i in range(ulo, uhi):
        w[row_mean, i] = zero
        w[row_m2, i] = zero
    for s in range(m):
        for i in range(ulo, uhi):
            w[row_mean, i] += w[r + s, i]
    for i in range(ulo, uhi):
        w[row_mean, i] *= inv_m
    for s in range(m):
        for i in range(ulo, uhi):
            d = w[r + s, i] - w[row_mean, i]
            w[row_m2, i] += d * d


@_helper
def _bn_batch_stats(x, p, w, lo, hi, layer, m):  # type: ignore[no-untyped-def]
    """S(layer) <- mean and 1/sqrt(var + eps) of A(layer) over the chunk's m samples (two-pass)."""
    ulo, uhi = _columns(lo, hi)
    one = real(1.0, x)
    c = int(p[H_CHUNK])
    width = int(p[H_WIDTHS + layer])
    a, _, st, _, _ = scratch_layout(p, layer)
    inv_m = real(1.0, x) / real(m, x)
    eps = real(BN_EPS, x)
    for u in range(width):
        rv = st + width + u
        _mean_m2(x, w, lo, hi, a + u * c, m, st + u, rv)
        for i in range(ulo, uhi):
            w[rv, i] = one / math.sqrt(w[rv, i] * inv_m + eps)


@_helper
def _bn_accumulate_stats(x, p, w, lo, hi, layer, m, n_before):  # type: ignore[no-untyped-def]
    """Merge the chunk's mean and sum of squared deviations of A(layer) into S(layer).

    S holds the running mean and M2 (not yet 1/sqrt(var + eps)); Chan, Golub &
    LeVeque (1979): ``M2 = M2_a + M2_b + delta^2 n_a n_b / (n_a + n_b)``.
    """
    ulo, uhi = _columns(lo, hi)
    c = int(p[H_CHUNK])
    width = int(p[H_WIDTHS + layer])
    a, _, st, _, _ = scratch_layout(p, layer)
    t_mean = c
    t_m2 = c + 1
    nb = real(m, x)
    na = real(n_before, x)
    f_new = nb / (na + nb)
    f_m2 = na * nb / (na + nb)
    for u in range(width):
        rm = st + u
        rv = st + width + u
        _mean_m2(x, w, lo, hi, a + u * c, m, t_mean, t_m2)
        for i in range(ulo, uhi):
            delta = w[t_mean, i] - w[rm, i]
            w[rm, i] += delta * f_new
            w[rv, i] += w[t_m2, i] + delta * delta * f_m2


@_helper
def _bn_finish_stats(x, p, w, lo, hi, layer, n):  # type: ignore[no-untyped-def]
    """S(layer): M2 -> 1/sqrt(M2 / n + eps)."""
    ulo, uhi = _columns(lo, hi)
    one = real(1.0, x)
    width = int(p[H_WIDTHS + layer])
    st = scratch_layout(p, layer)[2]
    inv_n = real(1.0, x) / real(n, x)
    eps = real(BN_EPS, x)
    for u in range(width):
        rv = st + width + u
        for i in range(ulo, uhi):
            w[rv, i] = one / math.sqrt(w[rv, i] * inv_n + eps)


@_helper
def _bn_normalize(x, p, w, lo, hi, layer, m):  # type: ignore[no-untyped-def]
    """X(layer) <- (A - mean) * inv_std;  A(layer) <- gamma * X + beta (activation not applied)."""
    ulo, uhi = _columns(lo, hi)
    c = int(p[H_CHUNK])
    width = int(p[H_WIDTHS + layer])
    a, xh, st, _, _ = scratch_layout(p, layer)
    _, _, r_gamma, r_beta = param_offsets(p, layer)
    for u in range(width):
        r = a + u * c
        rx = xh + u * c
        rm = st + u
        rv = st + width + u
        for s in range(m):
            for i in range(ulo, uhi):
                v = (w[r + s, i] - w[rm, i]) * w[rv, i]
                w[rx + s, i] = v
                w[r + s, i] = x[r_gamma + u, i] * v + x[r_beta + u, i]


@_helper
def _forward(x, p, w, lo, hi, m, upto, stats_from_chunk):  # type: ignore[no-untyped-def]
    """Forward the chunk (sample indices in rows 0..m-1) through affine layers 1..``upto``.

    Layers below ``upto`` get batch normalization and their activation; layer
    ``upto`` only its affine map (``upto = L``: A(L) holds the logits). With
    ``stats_from_chunk`` batch normalization uses the chunk's own statistics
    (and stores them in S), else the statistics already in S.
    """
    bn = int(p[H_BN])
    _fill_inputs(p, w, lo, hi, m)
    for layer in range(1, upto + 1):
        _affine(x, p, w, lo, hi, layer, m)
        if layer < upto:
            if bn != 0:
                if stats_from_chunk:
                    _bn_batch_stats(x, p, w, lo, hi, layer, m)
                _bn_normalize(x, p, w, lo, hi, layer, m)
            _activate(p, w, lo, hi, layer, m)


@_helper
def _full_stats(x, p, w, lo, hi):  # type: ignore[no-untyped-def]
    """S(1..L-1) <- batch-norm statistics over the whole data set, chunk by chunk."""
    ulo, uhi = _columns(lo, hi)
    zero = real(0.0, x)
    n = int(p[H_N])
    c = int(p[H_CHUNK])
    n_layers = int(p[H_LAYERS])
    for layer in range(1, n_layers):
        width = int(p[H_WIDTHS + layer])
        st = scratch_layout(p, layer)[2]
        for r in range(st, st + 2 * width):
            for i in range(ulo, uhi):
                w[r, i] = zero
        for first in range(0, n, c):
            m = min(c, n - first)
            _fill_range(w, lo, hi, first, m)
            _forward(x, p, w, lo, hi, m, layer, False)
            _bn_accumulate_stats(x, p, w, lo, hi, layer, m, first)
        _bn_finish_stats(x, p, w, lo, hi, layer, n)

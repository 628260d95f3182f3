"""The math of finite-sum landscapes: the model, its data and its minibatches, packed in ``p``.

One set of math functions (:func:`value`, :func:`grad`, :func:`batch_grad`,
:func:`hess`) serves every model: the architecture, the loss, the data set and
the batch schedule are runtime values in the packed vector ``p``, so a new
architecture or data set never recompiles a kernel. The functions follow the
landscape interface (:mod:`descentlab.landscapes.base`): SoA positions
``x[d, i]``, particles ``i`` in ``[lo, hi)`` innermost, no allocation (scratch
rows ``w[r, i]``), constants through :func:`~descentlab._jit.real`.

Packed vector ``p`` (kernel dtype; every header entry an integer <= 2**24 stored
as a float, so exact in float32; offsets are computed in int64, never stored)::

    index  name        meaning
    0      VERSION     FORMAT_VERSION (1)
    1      KIND        0 mlp (also linear / logistic), 1 product
    2      LOSS        0 mse, 1 cross_entropy
    3      METRIC      0 loss, 1 accuracy (classifiers: value = fraction correct)
    4      N           samples n
    5      N_IN        inputs per sample
    6      N_OUT       outputs per sample (classes; 1 = binary logistic)
    7      LAYERS      affine layers L (hidden layers + 1)
    8      BN          1: batch normalization after every hidden affine map
    9      SHUFFLE     1: a fresh permutation of the data per (particle, epoch)
    10     DROP_LAST   1: drop the short last batch of an epoch
    11     CHUNK       C: samples held in scratch at once (>= every batch size, <= n)
    12     PHASES      P: phases of the batch-size schedule
    13     DIM         D: parameters per particle
    14     widths      L + 1 entries: N_IN, hidden widths..., N_OUT
    ..     activations L entries: activation code of each layer (the last one 0)
    ..     sizes       P batch sizes (batches.batch_of_step)
    ..     epochs      P phase lengths in epochs (the last one ignored)
    ..     x           n * N_IN inputs, row-major (sample, feature)
    ..     y           regression: n * N_OUT targets row-major; classification: n labels

Codes: activations ``linear 0, tanh 1, relu 2, sigmoid 3``.

Parameter vector of one particle (``x[:, i]``): per affine layer ``l = 1..L``
the weights W (out x in, row-major) then the bias b (out), and after a hidden
layer's bias, with batch normalization, gamma (out) then beta (out). The
product model has ``x = (w1, w2)``.

The product model packs N_IN = N_OUT = 1, L = 1. If ``x`` has not D rows or
the scratch ``w`` has too few rows (or a batch exceeds C), the functions write
NaN instead of reading out of bounds.

Losses (torch conventions): ``mse`` is ``torch.nn.MSELoss()``: the mean over
samples *and* outputs of the squared error (no 1/2). ``cross_entropy`` with
N_OUT >= 2 is ``torch.nn.CrossEntropyLoss()`` (softmax, integer labels, mean over
samples); with N_OUT == 1 it is ``torch.nn.BCEWithLogitsLoss()`` (labels 0/1)
in the stable form ``max(z, 0) - z y + log1p(exp(-|z|))``. Accuracy: argmax
(the first maximal logit) equals the label; binary: ``z > 0`` predicts 1.

Batch normalization (``torch.nn.BatchNorm1d`` in training mode): per feature
``(a - mean) / sqrt(var + 1e-5) * gamma + beta`` with the biased variance of
the samples at hand: the minibatch in :func:`batch_grad`, the whole data set
in :func:`value` and :func:`grad` (so both are the exact full-batch training
loss and its gradient; there are no running statistics).

Scratch rows (``w[r, i]``; C = CHUNK, rows of a layer are unit-major,
``row = base + unit * C + sample``)::

    0 .. C-1            sample index (as a float) of each chunk position, per particle
    C .. C+3            temporaries
    A(0) .. A(L)        activations: inputs (N_IN * C), hidden h_l (width * C), logits (N_OUT * C);
                        the backward pass overwrites h_l / logits with dLoss/d(pre-activation)
    X(1) .. X(L-1)      BN only: normalized pre-activations xhat (width * C each)
    S(1) .. S(L-1)      BN only: per feature mean (width rows) then 1/sqrt(var + eps) (width rows)
    DH                  dLoss/dh of a hidden layer (max hidden width * C)

Temporaries: the softmax uses t0 = max logit, t1 = sum of exponentials, t2 =
label, t3 = the label's logit; the batch-norm statistics pass uses t0, t1.

A minibatch (<= C samples) is processed as one chunk, layer by layer: every
weight row is read once per batch, and batch statistics are at hand. The full
data set is processed in chunks of C; with batch normalization the full-data
statistics come first (one pass per BN layer, Chan et al.'s pairwise
mean/variance update), and the gradient needs one backward pass per BN layer
(top down, each accumulating that layer's sum(dz) and sum(dz * xhat), which
are also the gamma/beta gradients) before the final pass.

Compilation and speed. Only the four landscape functions are inlined into a
kernel; the helpers (``_helper``) are compiled once per dtype and called, which
keeps a kernel's compile time to seconds instead of minutes. Their particle
loops run over unsigned bounds (see :func:`_columns`) so that LLVM vectorises
them; transcendental functions in particle loops are the arithmetic
:func:`exp_nonpositive`, :func:`tanh_vec`, :func:`sigmoid_vec` (a few ulp),
vectorised too. Every particle's arithmetic is independent of ``lo``/``hi``
and of the other particles, so a call with ``hi = lo + 1`` (the CPU kernel's
replay, a CUDA thread) gives the same bits as a call on a whole block.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import math_function, real
from ..data.batches import batch_of_step, half_bits, permute, shuffle_keys

FORMAT_VERSION = 1

H_VERSION = 0
H_KIND = 1
H_LOSS = 2
H_METRIC = 3
H_N = 4
H_N_IN = 5
H_N_OUT = 6
H_LAYERS = 7
H_BN = 8
H_SHUFFLE = 9
H_DROP_LAST = 10
H_CHUNK = 11
H_PHASES = 12
H_DIM = 13
H_WIDTHS = 14  # first variable-length field

KIND_MLP = 0
KIND_PRODUCT = 1
LOSS_MSE = 0
LOSS_CROSS_ENTROPY = 1
METRIC_LOSS = 0
METRIC_ACCURACY = 1
ACT_LINEAR = 0
ACT_TANH = 1
ACT_RELU = 2
ACT_SIGMOID = 3

#: Temporary scratch rows after the sample-index rows.
N_TMP = 4
#: torch.nn.BatchNorm1d's default eps.
BN_EPS = 1e-5

#: Helpers are compiled once per signature and called, not inlined: inlining all of
#: them at the Numba IR level made a kernel take minutes to compile.
_helper = math_function(inline="never")

# Batch-norm modes of a backward pass.
_BN_BATCH = 0  # the chunk is the whole set: compute the sums, then backpropagate
_BN_ACCUMULATE = 1  # add this chunk's sums to g (gamma/beta rows) and stop
_BN_KNOWN = 2  # the sums are complete in g: backpropagate


# --------------------------------------------------------------------------- layout of p and w


@_helper
def _columns(lo, hi):  # type: ignore[no-untyped-def]
    """``lo, hi`` as unsigned loop bounds.

    NOTE: particle loops run over ``range(ulo, uhi)`` with unsigned bounds: a
    signed index makes Numba emit negative-index wraparound, which stops LLVM
    from vectorising a loop whose ``lo`` is not a compile-time constant (every
    loop of a helper that is called, not inlined). Never do arithmetic with
    the unsigned ``i`` (int64 + uint64 is float64 in Numba).
    """
    return np.uint64(lo), np.uint64(hi)


@_helper
def data_offsets(p):  # type: ignore[no-untyped-def]
    """``(o_acts, o_sizes, o_epochs, o_x, o_y)``: offsets of the variable fields of ``p``."""
    n_layers = int(p[H_LAYERS])
    n_phases = int(p[H_PHASES])
    o_acts = H_WIDTHS + n_layers + 1
    o_sizes = o_acts + n_layers
    o_epochs = o_sizes + n_phases
    o_x = o_epochs + n_phases
    o_y = o_x + int(p[H_N]) * int(p[H_N_IN])
    return o_acts, o_sizes, o_epochs, o_x, o_y


@_helper
def scratch_layout(p, layer):  # type: ignore[no-untyped-def]
    """``(act, xhat, stats, dh, total)``: first rows of A(layer), X(layer), S(layer), DH; rows in all."""
    if int(p[H_KIND]) == KIND_PRODUCT:
        return 0, 0, 0, 0, 1
    n_layers = int(p[H_LAYERS])
    c = int(p[H_CHUNK])
    bn = int(p[H_BN])
    before = 0
    hidden_before = 0
    total_width = 0
    hidden_total = 0
    max_hidden = 0
    for k in range(n_layers + 1):
        wk = int(p[H_WIDTHS + k])
        total_width += wk
        if k < layer:
            before += wk
        if k >= 1 and k < n_layers:
            hidden_total += wk
            max_hidden = max(max_hidden, wk)
            if k < layer:
                hidden_before += wk
    r_in = c + N_TMP
    act = r_in + c * before
    r_bn = r_in + c * total_width
    if bn != 0:
        xhat = r_bn + c * hidden_before
        r_stats = r_bn + c * hidden_total
        stats = r_stats + 2 * hidden_before
        dh = r_stats + 2 * hidden_total
    else:
        xhat = r_bn
        stats = r_bn
        dh = r_bn
    return act, xhat, stats, dh, dh + c * max_hidden


@_helper
def param_offsets(p, layer):  # type: ignore[no-untyped-def]
    """``(weight, bias, gamma, beta)``: first coordinates of affine layer ``layer`` (1-based)."""
    n_layers = int(p[H_LAYERS])
    bn = int(p[H_BN])
    off = 0
    for k in range(1, layer):
        wk = int(p[H_WIDTHS + k])
        off += wk * int(p[H_WIDTHS + k - 1]) + wk
        if bn != 0 and k < n_layers:
            off += 2 * wk
    width = int(p[H_WIDTHS + layer])
    b_off = off + width * int(p[H_WIDTHS + layer - 1])
    return off, b_off, b_off + width, b_off + 2 * width


# --------------------------------------------------------------------------- vectorisable exp
# Numba calls libm for math.exp / math.tanh, one particle at a time: in a tanh
# network with a softmax output that was over half of a training step. These are
# plain arithmetic (Cody & Waite range reduction, a Taylor polynomial, the power
# of two as a product of exact powers chosen by the exponent's bits), so LLVM
# vectorises the particle loops; vector and scalar code give the same bits.
# NOTE: these per-element functions take their dtype from the scalar argument
# (``real(c, z)``): measured, ``real(c, array)`` inside a function called per
# element kept the calling loop scalar. Loops hoist ``real(c, x)`` out of the
# particle loop for the same reason.

_LOG2E = 1.4426950408889634
_LN2_HI = 0.693145751953125  # 16 significant bits: k * _LN2_HI is exact in float32 and float64
_LN2_LO = 1.4286068203094173e-06  # ln 2 - _LN2_HI
_EXP_MIN = -708.0  # exp(-708) ~ 3e-308 is still a normal float64
# Module-level floats are compile-time constants; NOTE: a literal ``2.0**-16``
# inside a math function is a runtime power loop that stops vectorisation.
_P1, _P2, _P4, _P8, _P16 = 2.0**-1, 2.0**-2, 2.0**-4, 2.0**-8, 2.0**-16
_P32, _P64, _P128, _P256, _P512 = 2.0**-32, 2.0**-64, 2.0**-128, 2.0**-256, 2.0**-512
_F13, _F12, _F11, _F10, _F9 = 1 / 6227020800.0, 1 / 479001600.0, 1 / 39916800.0, 1 / 3628800.0, 1 / 362880.0
_F8, _F7, _F6, _F5, _F4, _F3 = 1 / 40320.0, 1 / 5040.0, 1 / 720.0, 1 / 120.0, 1 / 24.0, 1 / 6.0


@math_function
def _exp_parts(v):  # type: ignore[no-untyped-def]
    """``(scale, q)`` with ``exp(v) = scale * (1 + q)`` and ``expm1(v) = scale * q + (scale - 1)``, for v <= 0.

    ``scale = 2**k`` (k = round(v / ln 2)), ``q = expm1(r)`` for ``|r| <= ln(2) / 2``
    by its Taylor series to r**13 (truncation < 5e-18). Arguments below -708
    count as -708 (the result is below 4e-308); NaN gives NaN.
    """
    one = real(1.0, v)
    low = real(_EXP_MIN, v)
    v = low if v < low else v  # -inf -> low; NaN stays NaN (and makes r NaN)
    finite = v if v >= low else low  # NaN -> low: math.floor(NaN) raises in the interpreter
    k = math.floor(finite * real(_LOG2E, v) + real(0.5, v))
    kf = real(k, v)
    r = (v - kf * real(_LN2_HI, v)) - kf * real(_LN2_LO, v)
    q = real(_F13, v)
    q = real(_F12, v) + r * q
    q = real(_F11, v) + r * q
    q = real(_F10, v) + r * q
    q = real(_F9, v) + r * q
    q = real(_F8, v) + r * q
    q = real(_F7, v) + r * q
    q = real(_F6, v) + r * q
    q = real(_F5, v) + r * q
    q = real(_F4, v) + r * q
    q = real(_F3, v) + r * q
    q = real(0.5, v) + r * q
    q = r * (one + r * q)
    m = -k
    scale = one
    scale *= real(_P1, v) if (m & 1) != 0 else one
    scale *= real(_P2, v) if (m & 2) != 0 else one
    scale *= real(_P4, v) if (m & 4) != 0 else one
    scale *= real(_P8, v) if (m & 8) != 0 else one
    scale *= real(_P16, v) if (m & 16) != 0 else one
    scale *= real(_P32, v) if (m & 32) != 0 else one
    scale *= real(_P64, v) if (m & 64) != 0 else one
    scale *= real(_P128, v) if (m & 128) != 0 else one
    scale *= real(_P256, v) if (m & 256) != 0 else one
    scale *= real(_P512, v) if (m & 512) != 0 else one
    return scale, q


@math_function
def exp_nonpositive(v):  # type: ignore[no-untyped-def]
    """exp(v) for v <= 0 (relative error a few ulp), vectorisable."""
    scale, q = _exp_parts(v)
    return scale + scale * q


@math_function
def tanh_vec(z):  # type: ignore[no-untyped-def]
    """tanh(z) = sign(z) (-e) / (2 + e), e = expm1(-2 |z|): accurate for small |z| too; NaN stays NaN."""
    scale, q = _exp_parts(real(-2.0, z) * abs(z))
    e = scale * q + (scale - real(1.0, z))
    t = -e / (real(2.0, z) + e)
    return -t if z < real(0.0, z) else t


@math_function
def sigmoid_vec(z):  # type: ignore[no-untyped-def]
    """1 / (1 + exp(-z)) without overflow, vectorisable."""
    one = real(1.0, z)
    e = exp_nonpositive(-abs(z))
    return one / (one + e) if z >= real(0.0, z) else e / (one + e)


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


# --------------------------------------------------------------------------- loss and its gradient


@_helper
def _softmax_prepare(x, p, w, lo, hi, s):  # type: ignore[no-untyped-def]
    """Sample s of the chunk: logits z in A(L) -> exp(z - max z); temporaries t0 = max z, t1 = sum exp, t2 = label."""
    c = int(p[H_CHUNK])
    n_out = int(p[H_N_OUT])
    o_y = data_offsets(p)[4]
    a = scratch_layout(p, int(p[H_LAYERS]))[0]
    ulo, uhi = _columns(lo, hi)
    zero = real(0.0, x)
    t0 = c
    t1 = c + 1
    t2 = c + 2
    for i in range(ulo, uhi):
        w[t0, i] = w[a + s, i]
        w[t1, i] = zero
        w[t2, i] = p[o_y + int(w[s, i])]
    for o in range(1, n_out):
        r = a + o * c + s
        for i in range(ulo, uhi):
            v = w[r, i]
            w[t0, i] = v if v > w[t0, i] else w[t0, i]
    for o in range(n_out):
        r = a + o * c + s
        for i in range(ulo, uhi):
            e = exp_nonpositive(w[r, i] - w[t0, i])
            w[r, i] = e
            w[t1, i] += e


@_helper
def _chunk_loss(x, p, w, out, lo, hi, m):  # type: ignore[no-untyped-def]
    """out[i] += summed loss (or number correct, METRIC = accuracy) of the chunk's m samples (A(L) is overwritten)."""
    c = int(p[H_CHUNK])
    n_out = int(p[H_N_OUT])
    o_y = data_offsets(p)[4]
    a = scratch_layout(p, int(p[H_LAYERS]))[0]
    ulo, uhi = _columns(lo, hi)
    zero = real(0.0, x)
    one = real(1.0, x)
    if int(p[H_METRIC]) == METRIC_ACCURACY:
        for s in range(m):
            for i in range(ulo, uhi):
                label = int(p[o_y + int(w[s, i])])
                if n_out == 1:
                    pred = 1 if w[a + s, i] > zero else 0
                else:
                    best = w[a + s, i]
                    pred = 0
                    for o in range(1, n_out):
                        v = w[a + o * c + s, i]
                        if v > best:
                            best = v
                            pred = o
                out[i] += one if pred == label else zero
    elif int(p[H_LOSS]) == LOSS_MSE:
        for o in range(n_out):
            for s in range(m):
                for i in range(ulo, uhi):
                    d = w[a + o * c + s, i] - p[o_y + int(w[s, i]) * n_out + o]
                    out[i] += d * d
    elif n_out == 1:
        for s in range(m):
            for i in range(ulo, uhi):
                z = w[a + s, i]
                y = p[o_y + int(w[s, i])]
                out[i] += max(z, zero) - z * y + math.log1p(exp_nonpositive(-abs(z)))
    else:
        # loss = log(sum exp(z - max)) + max - z_label
        t3 = c + 3
        for s in range(m):
            for i in range(ulo, uhi):
                w[t3, i] = zero
            for o in range(n_out):
                r = a + o * c + s
                for i in range(ulo, uhi):
                    w[t3, i] = w[r, i] if p[o_y + int(w[s, i])] == o else w[t3, i]
            _softmax_prepare(x, p, w, lo, hi, s)
            for i in range(ulo, uhi):
                out[i] += math.log(w[c + 1, i]) + w[c, i] - w[t3, i]


@_helper
def _output_grad(x, p, w, lo, hi, m, n_set):  # type: ignore[no-untyped-def]
    """A(L) <- d(mean loss over n_set samples)/d(logits) for the chunk's m samples (in place)."""
    c = int(p[H_CHUNK])
    n_out = int(p[H_N_OUT])
    o_y = data_offsets(p)[4]
    a = scratch_layout(p, int(p[H_LAYERS]))[0]
    ulo, uhi = _columns(lo, hi)
    zero = real(0.0, x)
    if int(p[H_LOSS]) == LOSS_MSE:
        scale = real(2.0, x) / real(n_set * n_out, x)
        for o in range(n_out):
            for s in range(m):
                for i in range(ulo, uhi):
                    r = a + o * c + s
                    w[r, i] = (w[r, i] - p[o_y + int(w[s, i]) * n_out + o]) * scale
    elif n_out == 1:
        scale = real(1.0, x) / real(n_set, x)
        for s in range(m):
            for i in range(ulo, uhi):
                w[a + s, i] = (sigmoid_vec(w[a + s, i]) - p[o_y + int(w[s, i])]) * scale
    else:
        scale = real(1.0, x) / real(n_set, x)
        for s in range(m):
            _softmax_prepare(x, p, w, lo, hi, s)
            for i in range(ulo, uhi):
                w[c + 1, i] = scale / w[c + 1, i]
            for o in range(n_out):
                r = a + o * c + s
                for i in range(ulo, uhi):
                    w[r, i] = w[r, i] * w[c + 1, i] - (scale if w[c + 2, i] == o else zero)


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


# --------------------------------------------------------------------------- the landscape functions


@_helper
def _shapes_ok(x, p, w):  # type: ignore[no-untyped-def]
    """False (the caller then returns NaN) if x has not p's D rows or the scratch w too few rows."""
    return x.shape[0] == int(p[H_DIM]) and w.shape[0] >= scratch_layout(p, 0)[4]


@math_function
def value(x, p, w, out, lo, hi):  # type: ignore[no-untyped-def]
    """out[i] = mean loss over all samples in p (or accuracy, see the module docstring)."""
    ulo, uhi = _columns(lo, hi)
    nan = real(math.nan, x)
    zero = real(0.0, x)
    if not _shapes_ok(x, p, w):
        for i in range(ulo, uhi):
            out[i] = nan
        return
    if int(p[H_KIND]) == KIND_PRODUCT:
        _product_value(x, p, out, lo, hi)
        return
    n = int(p[H_N])
    c = int(p[H_CHUNK])
    n_layers = int(p[H_LAYERS])
    single = n <= c
    if int(p[H_BN]) != 0 and not single:
        _full_stats(x, p, w, lo, hi)
    for i in range(ulo, uhi):
        out[i] = zero
    for first in range(0, n, c):
        m = min(c, n - first)
        _fill_range(w, lo, hi, first, m)
        _forward(x, p, w, lo, hi, m, n_layers, single)
        _chunk_loss(x, p, w, out, lo, hi, m)
    denom = n
    if int(p[H_METRIC]) == METRIC_LOSS and int(p[H_LOSS]) == LOSS_MSE:
        denom = n * int(p[H_N_OUT])
    total = real(denom, x)
    for i in range(ulo, uhi):
        out[i] /= total  # a division: an accuracy is exactly count / n


@math_function
def grad(x, p, w, g, lo, hi):  # type: ignore[no-untyped-def]
    """g[:, i] = gradient of the full-data mean loss (batch norm with full-data statistics)."""
    ulo, uhi = _columns(lo, hi)
    nan = real(math.nan, x)
    zero = real(0.0, x)
    dim = g.shape[0]
    for d in range(dim):
        for i in range(ulo, uhi):
            g[d, i] = zero
    if not _shapes_ok(x, p, w):
        for d in range(dim):
            for i in range(ulo, uhi):
                g[d, i] = nan
        return
    n = int(p[H_N])
    if int(p[H_KIND]) == KIND_PRODUCT:
        _, _, _, o_x, o_y = data_offsets(p)
        scale = real(2.0, x) / real(n, x)
        for k in range(n):
            for i in range(ulo, uhi):
                _product_sample(x, g, i, p[o_x + k], p[o_y + k], scale)
        return
    c = int(p[H_CHUNK])
    n_layers = int(p[H_LAYERS])
    single = n <= c
    first_pass = 0
    if int(p[H_BN]) != 0 and not single:
        _full_stats(x, p, w, lo, hi)
        first_pass = n_layers - 1
    bn_mode = _BN_BATCH if single else _BN_KNOWN
    for target in range(first_pass, -1, -1):
        for first in range(0, n, c):
            m = min(c, n - first)
            _fill_range(w, lo, hi, first, m)
            _forward(x, p, w, lo, hi, m, n_layers, single)
            _output_grad(x, p, w, lo, hi, m, n)
            _backward(x, p, w, g, lo, hi, m, n, target, bn_mode)


@math_function
def batch_grad(x, p, w, g, lo, hi, t, seed, gid0):  # type: ignore[no-untyped-def]
    """g[:, i] = gradient of the mean loss over the minibatch of step t for particle gid0 + i.

    The batch is ``batches.batch_of_step(t, ...)``'s positions ``start ..
    start + size`` of the epoch's order: the identity, or with SHUFFLE the
    permutation ``permute(., shuffle_keys(seed, gid0 + i, epoch))``. Batch
    normalization uses the minibatch's statistics.
    """
    ulo, uhi = _columns(lo, hi)
    nan = real(math.nan, x)
    zero = real(0.0, x)
    dim = g.shape[0]
    for d in range(dim):
        for i in range(ulo, uhi):
            g[d, i] = zero
    n = int(p[H_N])
    n_phases = int(p[H_PHASES])
    _, o_sizes, o_epochs, o_x, o_y = data_offsets(p)
    epoch, start, size = batch_of_step(
        t, n, p[o_sizes : o_sizes + n_phases], p[o_epochs : o_epochs + n_phases], int(p[H_DROP_LAST]) != 0
    )
    if not _shapes_ok(x, p, w) or size > int(p[H_CHUNK]):
        for d in range(dim):
            for i in range(ulo, uhi):
                g[d, i] = nan
        return
    shuffle = int(p[H_SHUFFLE]) != 0
    if int(p[H_KIND]) == KIND_PRODUCT:
        scale = real(2.0, x) / real(size, x)
        if shuffle:
            h = half_bits(n)
            for i in range(lo, hi):  # signed: gid0 + i
                k0, k1, k2, k3 = shuffle_keys(seed, gid0 + i, epoch)
                for s in range(size):
                    k = permute(start + s, n, h, k0, k1, k2, k3)
                    _product_sample(x, g, i, p[o_x + k], p[o_y + k], scale)
        else:
            for s in range(size):
                for i in range(ulo, uhi):
                    _product_sample(x, g, i, p[o_x + start + s], p[o_y + start + s], scale)
        return
    if shuffle:
        h = half_bits(n)
        for i in range(lo, hi):  # signed: gid0 + i
            k0, k1, k2, k3 = shuffle_keys(seed, gid0 + i, epoch)
            for s in range(size):
                w[s, i] = permute(start + s, n, h, k0, k1, k2, k3)
    else:
        _fill_range(w, lo, hi, start, size)
    _forward(x, p, w, lo, hi, size, int(p[H_LAYERS]), True)
    _output_grad(x, p, w, lo, hi, size, size)
    _backward(x, p, w, g, lo, hi, size, size, 0, _BN_BATCH)


@math_function
def hess(x, p, w, h, lo, hi):  # type: ignore[no-untyped-def]
    """Models have no Hessian in the kernel: h is filled with NaN."""
    ulo, uhi = _columns(lo, hi)
    nan = real(math.nan, x)
    dim = h.shape[0]
    for r in range(dim):
        for c in range(dim):
            for i in range(ulo, uhi):
                h[r, c, i] = nan

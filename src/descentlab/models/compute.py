"""The math of finite-sum landscapes: the model, its data and its minibatches, packed in ``p``.

This module holds the four landscape functions; their parts live beside it:
:mod:`.packing` (the layout of ``p`` and ``w``), :mod:`.vecmath` (vectorisable
``exp``/``tanh``/``sigmoid``), :mod:`.forward`, :mod:`.loss`, :mod:`.backward` and
:mod:`.product`.

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

from .._jit import math_function, real
from ..data.batches import batch_of_step, half_bits, permute, shuffle_keys
from .backward import _backward
from .forward import _fill_range, _forward, _full_stats
from .loss import _chunk_loss, _output_grad
from .packing import (
    _BN_BATCH,
    _BN_KNOWN,
    ACT_LINEAR,
    ACT_RELU,
    ACT_SIGMOID,
    ACT_TANH,
    BN_EPS,
    FORMAT_VERSION,
    H_BN,
    H_CHUNK,
    H_DIM,
    H_DROP_LAST,
    H_KIND,
    H_LAYERS,
    H_LOSS,
    H_METRIC,
    H_N,
    H_N_IN,
    H_N_OUT,
    H_PHASES,
    H_SHUFFLE,
    H_VERSION,
    H_WIDTHS,
    KIND_MLP,
    KIND_PRODUCT,
    LOSS_CROSS_ENTROPY,
    LOSS_MSE,
    METRIC_ACCURACY,
    METRIC_LOSS,
    N_TMP,
    _columns,
    _helper,
    data_offsets,
    param_offsets,
    scratch_layout,
)
from .product import _product_sample, _product_value
from .vecmath import exp_nonpositive, sigmoid_vec, tanh_vec

__all__ = [
    "ACT_LINEAR",
    "ACT_RELU",
    "ACT_SIGMOID",
    "ACT_TANH",
    "BN_EPS",
    "FORMAT_VERSION",
    "H_BN",
    "H_CHUNK",
    "H_DIM",
    "H_DROP_LAST",
    "H_KIND",
    "H_LAYERS",
    "H_LOSS",
    "H_METRIC",
    "H_N",
    "H_N_IN",
    "H_N_OUT",
    "H_PHASES",
    "H_SHUFFLE",
    "H_VERSION",
    "H_WIDTHS",
    "KIND_MLP",
    "KIND_PRODUCT",
    "LOSS_CROSS_ENTROPY",
    "LOSS_MSE",
    "METRIC_ACCURACY",
    "METRIC_LOSS",
    "N_TMP",
    "batch_grad",
    "data_offsets",
    "exp_nonpositive",
    "grad",
    "hess",
    "param_offsets",
    "scratch_layout",
    "sigmoid_vec",
    "tanh_vec",
    "value",
]


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

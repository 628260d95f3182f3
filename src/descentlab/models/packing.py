"""Layout of a model's packed vector ``p`` and scratch rows ``w``: header indices, codes, offsets.

The format itself is described in :mod:`descentlab.models.compute`."""

from __future__ import annotations

import numpy as np

from .._jit import math_function

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

"""A model's loss over a chunk of samples, and its gradient with respect to the output."""

from __future__ import annotations

import math

from .._jit import real
from .packing import (
    H_CHUNK,
    H_LAYERS,
    H_LOSS,
    H_METRIC,
    H_N_OUT,
    LOSS_MSE,
    METRIC_ACCURACY,
    _columns,
    _helper,
    data_offsets,
    scratch_layout,
)
from .vecmath import exp_nonpositive, sigmoid_vec

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

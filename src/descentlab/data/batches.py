"""Minibatches without index arrays: a stateless permutation per (particle, epoch).

Sample ``k`` of epoch ``e`` for particle ``p`` is ``permute(k, ...)`` with keys
``shuffle_keys(seed, p, e)``: a balanced Feistel network on ``[0, 4**h)``
(``4**h >= n``) with cycle walking (Black & Rogaway 2002, "Ciphers with arbitrary
finite domains"), so the map is a bijection on ``[0, n)``: every sample is used
exactly once per epoch, and the order depends only on (seed, particle, epoch),
never on threads, shards or resume points. Round keys come from one Philox
block (:mod:`descentlab.core.rng`) on a stream reserved for shuffles.

The batch-size schedule maps an update step ``t`` (1-based, as the kernels
count) to ``(epoch, start, size)``: phases ``p`` of ``epochs[p]`` epochs with
batch size ``sizes[p]``; the last phase lasts for ever. With ``drop_last`` an
epoch has ``n // b`` batches, else ``ceil(n / b)`` (the last one short).

All functions are single-source math (:func:`descentlab._jit.math_function`):
callable from the interpreter, compiled into CPU and CUDA kernels.
"""

from __future__ import annotations

import numpy as np

from .._jit import math_function
from ..core.rng import MASK32, philox4x32

#: The Philox stream (counter word c2) of shuffles; noise uses step + 1, init 0.
SHUFFLE_STREAM = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_ONE = np.uint64(1)
_ROUNDS = 4
_MIX1 = np.uint64(0x7FEB352D)
_MIX2 = np.uint64(0x846CA68B)
_S15 = np.uint64(15)
_S16 = np.uint64(16)


@math_function
def shuffle_keys(seed, particle, epoch):  # type: ignore[no-untyped-def]
    """Four 32-bit round keys (uint64) of the permutation of (seed, particle, epoch)."""
    s = np.uint64(seed)
    p = np.uint64(particle)
    return philox4x32(p & MASK32, (p >> _S32) & MASK32, SHUFFLE_STREAM, np.uint64(epoch) & MASK32,
                      s & MASK32, (s >> _S32) & MASK32)  # fmt: skip


@math_function(inline="never")  # a while loop: inlining it trips a Numba IR check
def half_bits(n):  # type: ignore[no-untyped-def]
    """Smallest h >= 1 with 4**h >= n: the Feistel halves' width in bits."""
    h = 1
    while (1 << (2 * h)) < n:
        h += 1
    return h


@math_function
def _round(r, key):  # type: ignore[no-untyped-def]
    # lowbias32 (Wellons' hash prospector): a cheap 32-bit mixing function.
    v = (r ^ key) & MASK32
    v ^= v >> _S16
    v = (v * _MIX1) & MASK32
    v ^= v >> _S15
    v = (v * _MIX2) & MASK32
    v ^= v >> _S16
    return v


@math_function(inline="never")  # a while loop (cycle walking), called per sample
def permute(k, n, h, k0, k1, k2, k3):  # type: ignore[no-untyped-def]
    """Image of ``k`` in [0, n) under the keyed permutation (``h = half_bits(n)``)."""
    hb = np.uint64(h)
    mask = (_ONE << hb) - _ONE
    nn = np.uint64(n)
    v = np.uint64(k)
    while True:
        left = v >> hb
        right = v & mask
        left, right = right, left ^ (_round(right, k0) & mask)
        left, right = right, left ^ (_round(right, k1) & mask)
        left, right = right, left ^ (_round(right, k2) & mask)
        left, right = right, left ^ (_round(right, k3) & mask)
        v = (left << hb) | right
        if v < nn:
            return np.int64(v)


@math_function
def batches_per_epoch(n, size, drop_last):  # type: ignore[no-untyped-def]
    """Updates in one epoch of ``n`` samples with batch ``size``."""
    if drop_last:
        return n // size
    return (n + size - 1) // size


@math_function
def batch_of_step(t, n, sizes, epochs, drop_last):  # type: ignore[no-untyped-def]
    """``(epoch, start, size)`` of update step ``t`` (1-based).

    ``sizes`` (P,) batch size of each phase and ``epochs`` (P,) its length in
    epochs (the last entry is ignored: the last phase goes on). Epochs count
    from 0; ``start`` is the batch's first position in the epoch's order.
    """
    u = t - 1
    e0 = 0
    n_phases = sizes.shape[0]
    for p in range(n_phases):
        b = int(sizes[p])
        per = batches_per_epoch(n, b, drop_last)
        span = int(epochs[p]) * per
        if p == n_phases - 1 or u < span:
            e = u // per
            j = u - e * per
            start = j * b
            return e0 + e, start, min(b, n - start)
        u -= span
        e0 += int(epochs[p])
    return 0, 0, 0  # unreachable: the last phase goes on


def steps_for_epochs(n: int, sizes: list[int], epochs: list[int], drop_last: bool, total_epochs: int) -> int:
    """Update steps in the first ``total_epochs`` epochs of the batch schedule."""
    steps, done = 0, 0
    for p, b in enumerate(sizes):
        last = p == len(sizes) - 1
        e = total_epochs - done if last else min(epochs[p], total_epochs - done)
        if e <= 0:
            break
        steps += e * batches_per_epoch(n, b, drop_last)
        done += e
    return steps


def host_permutation(n: int, seed: int, particle: int, epoch: int) -> np.ndarray:
    """The whole permutation (n,) int64 of one (particle, epoch), as the kernels see it."""
    k0, k1, k2, k3 = shuffle_keys(np.uint64(seed), np.uint64(particle), np.uint64(epoch))
    h = half_bits(n)
    with np.errstate(over="ignore"):
        return np.array([permute(k, n, h, k0, k1, k2, k3) for k in range(n)], dtype=np.int64)

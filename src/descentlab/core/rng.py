"""Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11).

A draw is a pure function of ``(seed, particle, step, draw)``: no generator
state is carried, so a particle's numbers are the same whatever the thread
count, block, chunk, shard, resume point or target.

The functions are single-source: they run on NumPy ``uint64`` arrays (the host
draws initial positions for millions of particles at once), in the
interpreter, and compiled into CPU and CUDA kernels. 32-bit words are held in
``uint64`` and masked, so the 32x32->64 multiply of Philox is one product.

Key: ``(k0, k1) = (low, high)`` 32 bits of the seed.
Counter: ``(c0, c1, c2, c3) = (particle low, particle high, stream, draw)``
where ``stream`` is the step number (+1) for noise and 0 for initialisation.
"""

from __future__ import annotations

import numpy as np

from .._jit import cos, log, math_function, sqrt

MASK32 = np.uint64(0xFFFFFFFF)
_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_S32 = np.uint64(32)
_S11 = np.uint64(11)
_S21 = np.uint64(21)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2**-53
_TWO_PI = 6.283185307179586

RNG_NAME = "philox4x32-10"


@math_function
def philox4x32(c0, c1, c2, c3, k0, k1):  # type: ignore[no-untyped-def]
    """Ten Philox rounds; all arguments are uint64 holding 32-bit words."""
    for _ in range(10):
        p0 = _M0 * c0
        p1 = _M1 * c2
        hi0 = p0 >> _S32
        lo0 = p0 & MASK32
        hi1 = p1 >> _S32
        lo1 = p1 & MASK32
        c0 = hi1 ^ c1 ^ k0
        c1 = lo1
        c2 = hi0 ^ c3 ^ k1
        c3 = lo0
        k0 = (k0 + _W0) & MASK32
        k1 = (k1 + _W1) & MASK32
    return c0, c1, c2, c3


@math_function
def uniform_pair(seed, particle, stream, draw):  # type: ignore[no-untyped-def]
    """Two independent float64 uniforms in [0, 1) (53 bits each)."""
    k0 = seed & MASK32
    k1 = (seed >> _S32) & MASK32
    r0, r1, r2, r3 = philox4x32(
        particle & MASK32, (particle >> _S32) & MASK32, stream & MASK32, draw & MASK32, k0, k1
    )
    u0 = ((r0 << _S21) ^ (r1 >> _S11)) & np.uint64(0x1FFFFFFFFFFFFF)
    u1 = ((r2 << _S21) ^ (r3 >> _S11)) & np.uint64(0x1FFFFFFFFFFFFF)
    return u0 * _TWO_M53, u1 * _TWO_M53


@math_function
def standard_normal(seed, particle, stream, draw):  # type: ignore[no-untyped-def]
    """One standard normal (Box-Muller on one Philox block), float64."""
    u0, u1 = uniform_pair(seed, particle, stream, draw)
    radius = sqrt(-2.0 * log(1.0 - u0))  # 1 - u0 in (0, 1]: log is finite
    return radius * cos(_TWO_PI * u1)


def host_uniform(seed: int, particles: np.ndarray, stream: int, draws: int) -> np.ndarray:
    """Uniforms ``u[p, j]`` in [0, 1) for global particle ids ``particles`` (n,).

    Returns float64 (n, draws). Vectorised NumPy; identical to the compiled draw.
    """
    pid = np.asarray(particles, dtype=np.uint64)[:, None]
    draw = np.arange(draws, dtype=np.uint64)[None, :]
    s = np.uint64(seed)
    with np.errstate(over="ignore"):
        u0, _ = uniform_pair(s, pid, np.uint64(stream), draw)
    return np.asarray(u0, dtype=np.float64)


def host_normal(seed: int, particles: np.ndarray, stream: int, draws: int) -> np.ndarray:
    """Standard normals ``z[p, j]`` (n, draws) float64, as the kernels draw them."""
    pid = np.asarray(particles, dtype=np.uint64)[:, None]
    draw = np.arange(draws, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        z = standard_normal(np.uint64(seed), pid, np.uint64(stream), draw)
    return np.asarray(z, dtype=np.float64)

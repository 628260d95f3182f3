"""Vectorisable ``exp``, ``tanh`` and ``sigmoid`` for the particle loops of the model math."""

from __future__ import annotations

import math

from .._jit import math_function, real

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
    # int(): Numba's CUDA target gives math.floor the argument's float type (its CPU target an int)
    k = int(math.floor(finite * real(_LOG2E, v) + real(0.5, v)))  # noqa: RUF046
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

"""Small dense symmetric eigen-solver as a math function (cyclic Jacobi).

Each particle's D x D matrix lives in a column of the scratch array ``ws``
(rows, n): the particle loop stays innermost, so the CPU block kernel
vectorises across particles and the same source is a CUDA device function.

Layout of ``ws[:, i]`` (see :func:`eig_rows`)::

    [0, D*D)            A, row-major (r * D + c); on return its diagonal holds the eigenvalues
    [D*D, 2*D*D)        V, row-major; on return column k is the eigenvector of A[k, k]
    2*D*D, 2*D*D + 1    cos / sin of the current rotation
    [2*D*D + 2, +2*D)   two vectors of length D (free for the caller)

Cyclic Jacobi (Golub & Van Loan, Matrix Computations, 4th ed., Alg. 8.5.3;
Rutishauser's rotation): for each pair (p, q) the rotation with
``theta = (a_qq - a_pp) / (2 a_pq)``, ``t = sign(theta) / (|theta| + sqrt(theta^2 + 1))``,
``c = 1 / sqrt(t^2 + 1)``, ``s = t c`` zeroes ``a_pq``; ``A <- J^T A J``, ``V <- V J``.
A pair whose ``a_pq`` is negligible against both diagonal entries (adding
``100 |a_pq|`` changes neither) is set to zero without rotating, per particle.
Sweeps stop when every off-diagonal entry of every particle in ``[lo, hi)`` is
exactly zero, or after :data:`MAX_SWEEPS`; a sweep over an already diagonal
matrix is the identity (c = 1, s = 0), so a particle's result does not depend
on the other particles of its block.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import math_function, real

MAX_SWEEPS = 30


def eig_rows(dim: int) -> int:
    """Scratch rows :func:`jacobi_eigh` needs for dimension ``dim`` (incl. the free vectors)."""
    return 2 * dim * dim + 2 + 2 * dim


@math_function(inline="never")
def jacobi_eigh(ws, dim, lo, hi):
    """Eigen-decomposition of the symmetric matrices A in ``ws`` (layout above), in place."""
    dd = dim * dim
    cr = 2 * dd
    sr = cr + 1
    zero = real(0.0, ws)
    one = real(1.0, ws)
    # NOTE: unsigned particle bounds, so LLVM vectorises this called (not
    # inlined) function's particle loops (see models.compute._columns).
    ulo, uhi = np.uint64(lo), np.uint64(hi)
    for r in range(dim):
        for c in range(dim):
            for i in range(ulo, uhi):
                ws[dd + r * dim + c, i] = one if r == c else zero
    for _sweep in range(MAX_SWEEPS):
        off = zero
        for p in range(dim - 1):
            for q in range(p + 1, dim):
                for i in range(ulo, uhi):
                    off += abs(ws[p * dim + q, i])
        if off == zero:
            break
        for p in range(dim - 1):
            for q in range(p + 1, dim):
                pq = p * dim + q
                for i in range(ulo, uhi):
                    apq = ws[pq, i]
                    app = ws[p * dim + p, i]
                    aqq = ws[q * dim + q, i]
                    big = real(100.0, ws) * abs(apq)
                    c = one
                    s = zero
                    if apq != zero and not (abs(app) + big == abs(app) and abs(aqq) + big == abs(aqq)):
                        theta = (aqq - app) / (real(2.0, ws) * apq)
                        tt = one / (abs(theta) + math.sqrt(theta * theta + one))
                        if theta < zero:
                            tt = -tt
                        c = one / math.sqrt(tt * tt + one)
                        s = tt * c
                    ws[cr, i] = c
                    ws[sr, i] = s
                for k in range(dim):  # columns p, q of A J
                    for i in range(ulo, uhi):
                        akp = ws[k * dim + p, i]
                        akq = ws[k * dim + q, i]
                        ws[k * dim + p, i] = ws[cr, i] * akp - ws[sr, i] * akq
                        ws[k * dim + q, i] = ws[sr, i] * akp + ws[cr, i] * akq
                for k in range(dim):  # rows p, q of J^T (A J)
                    for i in range(ulo, uhi):
                        apk = ws[p * dim + k, i]
                        aqk = ws[q * dim + k, i]
                        ws[p * dim + k, i] = ws[cr, i] * apk - ws[sr, i] * aqk
                        ws[q * dim + k, i] = ws[sr, i] * apk + ws[cr, i] * aqk
                for i in range(ulo, uhi):
                    ws[pq, i] = zero
                    ws[q * dim + p, i] = zero
                for k in range(dim):  # V J
                    for i in range(ulo, uhi):
                        vkp = ws[dd + k * dim + p, i]
                        vkq = ws[dd + k * dim + q, i]
                        ws[dd + k * dim + p, i] = ws[cr, i] * vkp - ws[sr, i] * vkq
                        ws[dd + k * dim + q, i] = ws[sr, i] * vkp + ws[cr, i] * vkq

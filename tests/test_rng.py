"""The counter-based RNG is Philox4x32-10: Random123's known-answer vectors.

From Random123's ``tests/kat_vectors`` (Salmon et al., SC'11), columns counter (4 words),
key (2 words), expected output (4 words), all 32-bit hex.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from descentlab.core.rng import RNG_NAME, philox4x32

KAT = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]  # fmt: skip


@njit
def _compiled(c0, c1, c2, c3, k0, k1):  # type: ignore[no-untyped-def]
    return philox4x32(c0, c1, c2, c3, k0, k1)


@pytest.mark.parametrize(("ctr", "key", "want"), KAT)
@pytest.mark.parametrize("where", ["numpy", "compiled"])
def test_philox4x32_10_known_answers(ctr: tuple[int, ...], key: tuple[int, ...], want: tuple[int, ...],
                                     where: str) -> None:  # fmt: skip
    args = [np.uint64(v) for v in (*ctr, *key)]
    got = philox4x32(*args) if where == "numpy" else _compiled(*args)
    assert [int(v) for v in got] == list(want)
    assert RNG_NAME == "philox4x32-10"

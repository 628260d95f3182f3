"""Page-aligned buffers (light: imported by the file reader and writer)."""

from __future__ import annotations

from typing import Any

import numpy as np

#: Alignment (bytes) of record buffers: whole file chunks can then be written with O_DIRECT.
ALIGN = 4096


def aligned_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised C-ordered array whose data start on an ``ALIGN``-byte boundary.

    Its pages belong to it alone (the allocation is padded to whole pages), so that it can be
    page-locked for a device copy (``kernels/cuda.py``) without touching a neighbour's page.
    """
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    raw = np.empty(-(-nbytes // ALIGN) * ALIGN + ALIGN, dtype=np.uint8)
    off = -raw.ctypes.data % ALIGN
    return raw[off : off + nbytes].view(dt).reshape(shape)

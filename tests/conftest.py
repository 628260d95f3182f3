"""Shared test fixtures: the per-dtype tolerance table."""

from __future__ import annotations

import os

import numpy as np
import pytest

#: Relative tolerance of kernel vs NumPy reference, per dtype (jax-md's table).
RTOL = {"float64": 1e-12, "float32": 2e-5}
#: Absolute floor for values that pass through zero.
ATOL = {"float64": 1e-12, "float32": 2e-5}

os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".numba_cache"))


def assert_close(actual: np.ndarray, expected: np.ndarray, dtype: str, scale: float = 1.0) -> None:
    """Kernel vs reference within the dtype's tolerance (relative, with an absolute floor)."""
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype] * scale, atol=ATOL[dtype] * scale)


@pytest.fixture(params=["float64", "float32"])
def dtype(request: pytest.FixtureRequest) -> str:
    return request.param

"""The float32 half of test_optimizers.py's kernel-vs-reference cases (same cases, same check).

A file of its own so that pytest-xdist (``--dist loadfile``) compiles these kernels on
one worker while the float64 ones compile on the other.
"""

from __future__ import annotations

from typing import Any

import pytest

from test_optimizers import reference_params
from test_optimizers import test_trajectory_matches_reference as check_against_reference


@pytest.mark.parametrize(("land", "opt", "dtype"), reference_params("float32"))
def test_trajectory_matches_reference_float32(land: str, opt: dict[str, Any], dtype: str) -> None:
    check_against_reference(land, opt, dtype)

"""Initialisation schemes: shapes, boxes, grids, files; independent of sharding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from descentlab.engine.init import initial_positions
from descentlab.engine.spec import SpecError, parse_spec

BOX = (-5.0, 5.0)


def _pos(init: dict, ids: np.ndarray, dim: int = 2, seed: int = 0) -> np.ndarray:
    return initial_positions(init, dim, ids, seed, BOX)


def test_uniform_per_dimension_box() -> None:
    x = _pos({"scheme": "uniform", "low": [0.0, -1.0], "high": [1.0, 3.0]}, np.arange(20_000))
    assert x.shape == (20_000, 2)
    assert np.all(x >= [0.0, -1.0]) and np.all(x < [1.0, 3.0])
    np.testing.assert_allclose(x.mean(axis=0), [0.5, 1.0], atol=0.03)


def test_uniform_default_box_is_the_landscapes() -> None:
    x = _pos({"scheme": "uniform"}, np.arange(5000))
    assert x.min() >= -5 and x.max() < 5 and x.max() - x.min() > 9


def test_normal_mean_and_std() -> None:
    x = _pos({"scheme": "normal", "mean": [1.0, -2.0], "std": 0.5}, np.arange(40_000), seed=3)
    np.testing.assert_allclose(x.mean(axis=0), [1.0, -2.0], atol=0.02)
    np.testing.assert_allclose(x.std(axis=0), [0.5, 0.5], atol=0.02)


def test_grid_is_c_ordered_and_covers_the_box() -> None:
    init = {"scheme": "grid", "low": [-1.0, 0.0], "high": [1.0, 2.0], "resolution": [3, 5]}
    x = _pos(init, np.arange(15))
    np.testing.assert_array_equal(x[:5, 0], -1.0)
    np.testing.assert_allclose(x[:5, 1], np.linspace(0, 2, 5))
    np.testing.assert_allclose(x[::5, 0], [-1.0, 0.0, 1.0])


def test_zeros_constant_points(tmp_path: Path) -> None:
    np.testing.assert_array_equal(_pos({"scheme": "zeros"}, np.arange(3)), 0.0)
    np.testing.assert_array_equal(_pos({"scheme": "constant", "value": 0.25}, np.arange(3)), 0.25)
    pts = np.arange(8.0).reshape(4, 2)
    np.testing.assert_array_equal(_pos({"scheme": "points", "points": pts.tolist()}, np.arange(4)), pts)
    np.save(tmp_path / "p.npy", pts)
    from_file = _pos({"scheme": "points", "file": str(tmp_path / "p.npy")}, np.array([2, 3]))
    np.testing.assert_array_equal(from_file, pts[2:])


@pytest.mark.parametrize("scheme", ["uniform", "normal", "grid"])
def test_a_shard_draws_the_same_points(scheme: str) -> None:
    init = {"scheme": scheme, "resolution": 20}
    whole = _pos(init, np.arange(400), seed=9)
    np.testing.assert_array_equal(_pos(init, np.arange(130, 270), seed=9), whole[130:270])


def test_grid_and_points_define_the_particle_count() -> None:
    base = {"landscape": {"name": "himmelblau"}, "optimizer": {"name": "sgd"}}
    assert parse_spec({**base, "init": {"scheme": "grid", "resolution": [4, 6]}}).particles == 24
    with pytest.raises(SpecError, match=r"run\.particles"):
        parse_spec({**base, "run": {"particles": 5}, "init": {"scheme": "grid", "resolution": 4}})
    with pytest.raises(SpecError, match=r"init\.low"):
        parse_spec({**base, "run": {"particles": 5}, "init": {"scheme": "uniform", "low": 1, "high": 0}})
    with pytest.raises(SpecError, match=r"init\.low"):
        parse_spec({**base, "run": {"particles": 5}, "init": {"low": [0, 0, 0]}})

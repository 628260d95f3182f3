"""Initial positions, drawn with the counter-based RNG.

Particle ``i`` (global id) gets the same point whether it runs alone, in a
shard, or with any thread count: draws are keyed by ``(seed, i)`` with stream 0.

Schemes (``[init] scheme = ...``):

* ``uniform``: ``low``, ``high`` (scalars or one per dimension; default the landscape's box)
* ``normal``: ``mean``, ``std`` (scalars or per dimension)
* ``grid``: regular grid over ``low``..``high`` with ``resolution`` points per
  dimension (int or list); particle ids run over the grid in C order
* ``zeros``, ``constant`` (``value``)
* ``points``: explicit ``points`` (N, D) or ``file`` (.npy)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import ConfigDict, Field

from ..core.rng import host_normal, host_uniform
from ..core.tables import StrictTable


class InitTable(StrictTable):
    """``[init]`` of an analytic landscape: where the particles start (models: per-layer schemes)."""

    scheme: Literal["uniform", "normal", "grid", "zeros", "constant", "points"] = Field(
        default="uniform", description="how initial positions are drawn or given")
    low: float | list[float] | None = Field(
        default=None, description="uniform, grid: lower corner (default: the landscape's init box)")
    high: float | list[float] | None = Field(default=None, description="uniform, grid: upper corner")
    mean: float | list[float] | None = Field(default=None, description="normal: mean (default 0)")
    std: float | list[float] | None = Field(default=None, description="normal: standard deviation (default 1)")
    resolution: int | list[int] | None = Field(default=None, description="grid: points per axis (particles = product)")
    value: float | None = Field(default=None, description="constant: every coordinate")
    points: list[list[float]] | None = Field(default=None, description="points: the positions, one list per particle")
    file: str | None = Field(default=None, description="points: .npy/.npz/.csv/.h5 file of positions (N, D)")
    sha256: str | None = Field(default=None, description="set by the engine: hash of init.file (resume checks it)")
    model_config = ConfigDict(extra="forbid", strict=False, allow_inf_nan=False)


def _per_dim(value: Any, dim: int, field: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(dim, float(arr))
    if arr.shape != (dim,):
        raise ValueError(f"init.{field}: expected a number or {dim} numbers, got {arr.shape[0]}")
    return arr


def grid_points(low: np.ndarray, high: np.ndarray, resolution: np.ndarray) -> np.ndarray:
    axes = [np.linspace(lo, hi, int(r)) for lo, hi, r in zip(low, high, resolution, strict=True)]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def count_particles(init: Mapping[str, Any], dim: int) -> int | None:
    """Number of particles an init scheme defines by itself (grid, points), else None."""
    scheme = init.get("scheme", "uniform")
    if scheme == "grid":
        res = np.broadcast_to(np.asarray(init.get("resolution", 64), dtype=np.int64), (dim,))
        return int(np.prod(res))
    if scheme == "points":
        return int(load_points(init).shape[0])
    return None


def load_points(init: Mapping[str, Any]) -> np.ndarray:
    """Points (N, D) float64 of the ``points`` scheme; ValueError for a file that is not one real .npy array."""
    if "points" in init and init["points"] is not None:
        pts = np.asarray(init["points"], dtype=np.float64)
    else:
        name = init["file"]
        try:
            pts = np.load(name, allow_pickle=False)
        except (EOFError, ValueError, UnicodeError) as exc:  # empty, truncated, pickled, not .npy
            raise ValueError(f"{name} is not a .npy array file ({exc or type(exc).__name__})") from None
        if not isinstance(pts, np.ndarray):  # an .npz archive
            pts.close()
            raise ValueError(f"{name} is an .npz archive; save one (N, D) array with numpy.save (.npy)")
        if pts.dtype.kind not in "biuf":  # complex would lose its imaginary part silently
            raise ValueError(f"{name} holds {pts.dtype} values; expected real numbers")
    if pts.ndim == 1:
        pts = pts[:, None]
    return np.asarray(pts, dtype=np.float64)


def initial_positions(
    init: Mapping[str, Any], dim: int, ids: np.ndarray, seed: int, default_box: tuple[float, float]
) -> np.ndarray:
    """Positions (len(ids), D) float64 of the particles with global ids ``ids``."""
    scheme = init.get("scheme", "uniform")
    n = len(ids)
    if scheme == "uniform":
        low = _per_dim(init.get("low", default_box[0]), dim, "low")
        high = _per_dim(init.get("high", default_box[1]), dim, "high")
        u = host_uniform(seed, ids, 0, dim)
        return low + (high - low) * u
    if scheme == "normal":
        mean = _per_dim(init.get("mean", 0.0), dim, "mean")
        std = _per_dim(init.get("std", 1.0), dim, "std")
        return mean + std * host_normal(seed, ids, 0, dim)
    if scheme == "grid":
        low = _per_dim(init.get("low", default_box[0]), dim, "low")
        high = _per_dim(init.get("high", default_box[1]), dim, "high")
        res = np.broadcast_to(np.asarray(init.get("resolution", 64), dtype=np.int64), (dim,))
        return grid_points(low, high, res)[ids]
    if scheme == "zeros":
        return np.zeros((n, dim))
    if scheme == "constant":
        return np.full((n, dim), float(init.get("value", 0.0)))
    if scheme == "points":
        pts = load_points(init)
        if pts.shape[1] != dim:
            raise ValueError(f"init.points: points have {pts.shape[1]} coordinates, the landscape {dim}")
        return pts[ids]
    raise ValueError(f"init.scheme: unknown scheme {scheme!r}")

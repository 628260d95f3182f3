"""Sweeps and sharded runs: from a spec to run files, an index, and an ``xarray.Dataset``."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..core.status import STATUS_NAMES
from ..engine.spec import SpecError
from ..engine.store import StoreError, partial_path
from .execute import LocalExecutor, Task, make_executor
from .index import (
    INDEX_NAME,
    QUANTILES,
    axis_values,
    read_sweep_spec,
    summarize,
    write_shard_index,
    write_sweep_index,
)
from .spec import SweepPlan, expand


def plan_message(plan: SweepPlan) -> str:
    """What a sweep will do: points, and how many distinct kernels it compiles (at most)."""
    kinds = plan.describe_kernels()
    return (f"sweep: {len(plan)} point(s), {len(kinds)} distinct kernel(s) to compile or load: "
            + "; ".join(kinds))  # fmt: skip


def check_out(plan: SweepPlan, out: Path, resume: bool) -> None:
    """Refuse an output directory that cannot take this sweep (StoreError naming OUT)."""
    if out.exists() and not out.is_dir():
        raise StoreError(f"OUT: {out} exists and is not a directory")
    if not out.parent.is_dir():
        raise StoreError(f"OUT: directory {out.parent} does not exist")
    stored = read_sweep_spec(out) if out.is_dir() else None
    if out.is_dir() and not resume:
        if (out / INDEX_NAME).exists() or any(
            (out / p.file_name).exists() or partial_path(out / p.file_name).exists() for p in plan.points
        ):
            raise StoreError(f"OUT: {out} already holds a sweep; pass --resume to continue it")
    if resume and stored is not None and stored != plan.to_json():
        raise StoreError(f"OUT: {out} holds a sweep of another spec; cannot resume it with this one")


def run_sweep(
    spec: Mapping[str, Any] | str | Path | SweepPlan,
    out: str | Path,
    *,
    resume: bool = False,
    executor: Any = None,
    progress: bool | None = None,
    chunk_steps: int | None = None,
    echo: Callable[[str], None] | None = None,
    checkpoint_every: float = 30.0,
) -> Path:
    """Run every point of a sweep into ``out/`` (one run file each) and write ``out/sweep.h5``.

    Without ``resume``, ``out`` must hold no sweep yet. With it, complete points
    are skipped and partial ones resume (the sweep spec must be the same).
    Every point is validated before anything is written. Returns the index path.
    """
    plan = spec if isinstance(spec, SweepPlan) else expand(spec)
    out = Path(out)
    check_out(plan, out, resume)
    if echo is not None:
        echo(plan_message(plan))
    out.mkdir(exist_ok=True)
    write_sweep_index(out, plan)
    ex = executor or LocalExecutor()
    # workers get the resolved spec: absolute file names and their SHA-256, so a relative name can
    # neither miss nor find another file in a worker's folder
    tasks = [Task(f"descentlab-point-{p.index}-{p.hash}", p.resolved, str(out / p.file_name), run=p.run)
             for p in plan.points]  # fmt: skip
    known: dict[str, tuple[str, dict[str, Any]]] = {}

    def done(task: Task, res: dict[str, Any]) -> None:
        if "summary" in res:
            known[Path(task.out).name] = (res["status"], res["summary"])

    try:
        ex.run(tasks, progress=progress, unit="point", chunk_steps=chunk_steps, checkpoint_every=checkpoint_every,
               on_done=done)  # fmt: skip
    finally:
        write_sweep_index(out, plan, known=known)
    return out / INDEX_NAME


def _xarray() -> Any:
    try:
        import xarray as xr
    except ImportError:
        raise ImportError("sweeps as data sets need xarray and h5netcdf: pip install 'descentlab[sweep]'") from None
    return xr


def open_sweep(directory: str | Path, **kwargs: Any) -> Any:
    """``xarray.open_dataset(DIR/sweep.h5, engine="h5netcdf")``: the sweep with a ``point`` dimension."""
    xr = _xarray()

    path = Path(directory)
    if path.is_dir():
        path = path / INDEX_NAME
    return xr.open_dataset(path, engine="h5netcdf", **kwargs)


def sweep(
    spec: Mapping[str, Any] | str | Path,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    dask: str | None = None,
    trajectory: bool = False,
    progress: bool | None = False,
) -> Any:
    """Run a sweep and return it as an ``xarray.Dataset`` (dims ``point``, ``particle``, ``dim``, ...).

    ``out=None`` runs the points in memory, one after another; with ``out`` the
    points are written as run files plus ``out/sweep.h5`` (``dask``: ``"local"``
    or a scheduler address) and the index is returned, loaded into memory.
    Variables: ``final_x``, ``final_loss``, ``final_grad_norm``, ``final_status``,
    ``final_stop_step``, ``init_x`` (and ``trajectory_x``, ``trajectory_loss``)
    where the points' shapes agree; ``loss_quantile``, ``status_count``,
    ``success_rate``, ``steps_to_target`` always; each axis is a coordinate.
    """
    plan = expand(spec)
    _xarray()
    if out is not None:
        ex = make_executor(dask)
        try:
            run_sweep(plan, out, resume=resume, executor=ex, progress=progress)
        finally:
            ex.close()
        with open_sweep(out) as ds:
            data = ds.load()
        if not trajectory:
            data = data.drop_vars([v for v in ("trajectory_x", "trajectory_loss") if v in data])
        return data
    if dask is not None:
        raise ValueError("dask: a sweep on Dask writes files; give out=DIR")
    from ..engine.run import simulate

    results = []
    for p in plan.points:
        results.append(simulate(p.run))
    return _dataset(plan, results, trajectory)


def _dataset(plan: SweepPlan, results: list[Any], trajectory: bool) -> Any:
    xr = _xarray()

    sums = [summarize(r.final_loss, r.status, r.stop_step) for r in results]
    coords: dict[str, Any] = {
        "point": np.arange(len(plan.points)),
        "quantile": np.array(QUANTILES),
        "status": np.arange(len(STATUS_NAMES)),
        "status_name": ("status", np.array(STATUS_NAMES, dtype=object)),
        "hash": ("point", np.array([p.hash for p in plan.points], dtype=object)),
        "point_status": ("point", np.array(["complete"] * len(plan.points), dtype=object)),
    }
    for key in plan.axes:
        coords[key] = ("point", axis_values([p.axes[key] for p in plan.points]))
    dv: dict[str, Any] = {
        "loss_quantile": (("point", "quantile"), np.stack([s["loss_quantile"] for s in sums])),
        "status_count": (("point", "status"), np.stack([s["status_count"] for s in sums])),
        "success_rate": ("point", np.array([s["success_rate"] for s in sums])),
        "steps_to_target": ("point", np.array([s["steps_to_target"] for s in sums])),
    }
    if plan.same_shapes():
        r0 = plan.points[0].run
        coords.update({"particle": np.arange(r0.particles), "dim": np.arange(r0.dim),
                       "record": np.arange(r0.n_records), "step": ("record", results[0].record_steps)})  # fmt: skip
        fields = {"final_x": ("final_x", ("particle", "dim")), "final_loss": ("final_loss", ("particle",)),
                  "final_grad_norm": ("grad_norm", ("particle",)), "final_status": ("status", ("particle",)),
                  "final_stop_step": ("stop_step", ("particle",)), "init_x": ("init_x", ("particle", "dim"))}
        if trajectory:
            fields.update({"trajectory_x": ("trajectory_x", ("particle", "record", "dim")),
                           "trajectory_loss": ("trajectory_loss", ("particle", "record"))})  # fmt: skip
        for name, (attr, dims) in fields.items():
            dv[name] = (("point", *dims), np.stack([getattr(r, attr) for r in results]))
    ds = xr.Dataset(dv, coords=coords)
    ds.attrs.update({"format": "descentlab.sweep", "spec": plan.to_json(), "points": len(plan.points),
                     "axes": json.dumps(list(plan.axes))})  # fmt: skip
    return ds


# ----------------------------------------------------------------------------- shards


def shard_ranges(n: int, k: int) -> list[tuple[int, int]]:
    """``k`` contiguous particle ranges ``[a, b)`` covering ``[0, n)``, sizes differing by at most one."""
    bounds = [n * j // k for j in range(k + 1)]
    return list(itertools.pairwise(bounds))


def shard_paths(out: Path, k: int) -> list[Path]:
    return [out.with_name(f"{out.stem}.shard{j:03d}-of-{k:03d}{out.suffix or '.h5'}") for j in range(k)]


def run_sharded(
    spec: Mapping[str, Any] | str | Path,
    out: str | Path,
    shards: int,
    *,
    executor: Any = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    chunk_steps: int | None = None,
    checkpoint_every: float = 30.0,
) -> Path:
    """Run one spec as ``shards`` files of particle ranges plus the index run file ``out``.

    Shard ``j`` is ``OUT.shardJJJ-of-KKK.h5`` next to ``out``; ``out`` presents
    ``/init``, ``/trajectory``, ``/final`` as one run file does (virtual datasets).
    """
    from ..engine.spec import RunSpec, parse_spec

    rs = spec if isinstance(spec, RunSpec) else parse_spec(spec)  # a TOML's files: relative to its folder
    raw = rs.resolved  # what the workers parse: absolute file names with their SHA-256
    out = Path(out)
    if shards < 1 or shards > rs.particles:
        raise StoreError(f"--shards: expected 1..{rs.particles} (the particles), got {shards}")
    if out.is_dir():
        raise StoreError(f"OUT: {out} is a directory; give a file name")
    if not out.parent.is_dir():
        raise StoreError(f"OUT: directory {out.parent} does not exist")
    paths = shard_paths(out, shards)
    if not resume and not overwrite:
        for p in (out, *paths):
            if p.exists() or partial_path(p).exists():
                raise StoreError(f"OUT: {p} exists; pass --resume to continue or --overwrite to replace it")
    if overwrite:
        for p in (out, *paths):
            p.unlink(missing_ok=True)
            partial_path(p).unlink(missing_ok=True)
    ex = executor or LocalExecutor()
    tasks = [Task(f"descentlab-shard-{j}-of-{shards}-{out.name}", raw, str(p), r, run=rs)
             for j, (p, r) in enumerate(zip(paths, shard_ranges(rs.particles, shards), strict=True))]  # fmt: skip
    ex.run(tasks, progress=progress, unit="shard", chunk_steps=chunk_steps, checkpoint_every=checkpoint_every)
    try:
        return write_shard_index(out, paths)
    except ValueError as exc:
        raise StoreError(f"OUT: {exc}") from None


__all__ = ["SpecError", "open_sweep", "run_sharded", "run_sweep", "shard_ranges", "sweep"]

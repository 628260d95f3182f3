"""Index files: ``DIR/sweep.h5`` over the run files of a sweep, and the index of a sharded run.

Sweep index (``format = "descentlab.sweep"``), one row per point::

    /point, /quantile, /status, /particle, /dim, /record   dimension scales
    /<axis> (point)            each axis as a coordinate (dotted names, e.g. "optimizer.lr")
    /file, /hash, /point_status (point)   run file name, short spec hash, pending|partial|complete
    /loss_quantile (point, quantile), /status_count (point, status), /success_rate, /steps_to_target
    /final_x (point, particle, dim), /final_loss, /final_grad_norm, /final_status, /final_stop_step,
    /init_x, /trajectory_x (point, particle, record, dim), /trajectory_loss    virtual (shapes agree)

``xarray.open_dataset(DIR / "sweep.h5", engine="h5netcdf")`` opens it with a
``point`` dimension and the axes as coordinates. Virtual datasets read the run
files in place (relative names: the directory moves as a whole); a point whose
file is missing reads as the fill value (NaN, status -1).

Shard index: a run file (``format = "descentlab.run"``) whose ``/init``,
``/trajectory``, ``/final`` (and ``/metrics``) datasets are virtual
concatenations of the shards' along the particle axis.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from ..core.status import STATUS_NAMES
from ..engine.store import attach as _attach
from ..engine.store import scale as _scale

if TYPE_CHECKING:
    from .spec import SweepPlan

SWEEP_FORMAT = "descentlab.sweep"
INDEX_NAME = "sweep.h5"
#: Quantiles of the final loss stored per point.
QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
#: (name in the index, path in a run file, fill value for missing points)
FINAL_FIELDS = (
    ("final_x", "final/x", np.nan), ("final_loss", "final/loss", np.nan),
    ("final_grad_norm", "final/grad_norm", np.nan), ("final_status", "final/status", -1),
    ("final_stop_step", "final/stop_step", -1), ("init_x", "init/x", np.nan),
    ("trajectory_x", "trajectory/x", np.nan), ("trajectory_loss", "trajectory/loss", np.nan),
)  # fmt: skip
_SCALE_ATTRS = {"CLASS", "NAME", "REFERENCE_LIST", "DIMENSION_LIST", "_Netcdf4Dimid", "_Netcdf4Coordinates"}


def summarize(final_loss: np.ndarray, status: np.ndarray, stop_step: np.ndarray) -> dict[str, Any]:
    """Summary numbers of one point: final-loss quantiles (finite losses), status counts,
    success rate (fraction converged) and steps to target (median stop step of the converged)."""
    loss = np.asarray(final_loss, dtype=np.float64)
    finite = loss[np.isfinite(loss)]
    q = np.quantile(finite, QUANTILES) if finite.size else np.full(len(QUANTILES), np.nan)
    st = np.asarray(status).astype(np.int64)
    counts = np.bincount(st[st >= 0], minlength=len(STATUS_NAMES))[: len(STATUS_NAMES)]
    conv = np.asarray(stop_step)[st == 1]
    return {
        "loss_quantile": q,
        "status_count": counts.astype(np.int64),
        "success_rate": float(counts[1] / max(1, st.size)),
        "steps_to_target": float(np.median(conv)) if conv.size else float("nan"),
    }


def empty_summary() -> dict[str, Any]:
    return {"loss_quantile": np.full(len(QUANTILES), np.nan), "status_count": np.zeros(len(STATUS_NAMES), np.int64),
            "success_rate": float("nan"), "steps_to_target": float("nan")}  # fmt: skip


def axis_values(values: Sequence[Any]) -> np.ndarray:
    """An axis as an array: numbers stay numbers; anything else becomes text (JSON for lists)."""
    if all(isinstance(v, bool) for v in values):
        return np.array(values, dtype=bool)
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.float64 if any(isinstance(v, float) for v in values) else np.int64)
    return np.array([v if isinstance(v, str) else json.dumps(v) for v in values], dtype=object)


def point_summary(path: Path) -> tuple[str, dict[str, Any]]:
    """(status of a point's run file: pending | partial | complete, its summary numbers).

    The numbers include ``basins`` ({attractor name: fraction}) when the file was analysed.
    """
    status, summary, _ = read_point(path)
    return status, summary


def read_point(path: Path) -> tuple[str, dict[str, Any], float]:
    """:func:`point_summary` and the run's ``compile_time`` (seconds; 0 unless complete), in one read."""
    from ..engine.store import partial_path

    if path.exists():
        compile_time = 0.0
        try:
            with h5py.File(path, "r") as f:
                complete = bool(f.attrs.get("complete", False))
                if complete:
                    fin = f["final"]
                    summary = summarize(fin["loss"][...], fin["status"][...], fin["stop_step"][...])
                    compile_time = float(f.attrs.get("compile_time", 0.0))
        except OSError:
            complete = False
        if complete:
            from ..analysis import read_summary

            an = read_summary(path)
            if an is not None:
                summary["basins"] = {str(a["name"]): float(a["fraction"]) for a in an.get("attractors", [])}
            return "complete", summary, compile_time
        return "partial", empty_summary(), 0.0
    return ("partial" if partial_path(path).exists() else "pending"), empty_summary(), 0.0


def _strings(values: Sequence[str]) -> np.ndarray:
    return np.array(list(values), dtype=h5py.string_dtype())


def write_sweep_index(directory: Path, plan: SweepPlan, *, extra_attrs: dict[str, Any] | None = None,
                      known: Mapping[str, tuple[str, dict[str, Any]]] | None = None) -> Path:  # fmt: skip
    """Write (atomically) ``DIRECTORY/sweep.h5`` from the plan and the run files present now.

    ``known``: {file name: (status, summary)} of points whose run file was just read
    (by :func:`~descentlab.sweeps.execute.run_task`); the others are read here.
    """
    directory = Path(directory)
    out = directory / INDEX_NAME
    tmp = directory / (INDEX_NAME + ".tmp")
    known = known or {}
    rows = [known.get(p.file_name) or point_summary(directory / p.file_name) for p in plan.points]
    n = len(plan.points)
    coords = ["file", "hash", "point_status", *plan.axes]
    with h5py.File(tmp, "w") as f:
        f.attrs.update({"format": SWEEP_FORMAT, "format_version": 1, "spec": plan.to_json(), "points": n,
                        "axes": json.dumps(list(plan.axes)),
                        "complete": all(s == "complete" for s, _ in rows), **(extra_attrs or {})})  # fmt: skip
        pt = _scale(f, "point", np.arange(n, dtype=np.int64))
        qs = _scale(f, "quantile", np.array(QUANTILES))
        ss = _scale(f, "status", np.arange(len(STATUS_NAMES), dtype=np.int64))
        _attach(f.create_dataset("status_name", data=_strings(STATUS_NAMES)), ss)
        for name, data in (("file", _strings([p.file_name for p in plan.points])),
                           ("hash", _strings([p.hash for p in plan.points])),
                           ("point_status", _strings([s for s, _ in rows]))):  # fmt: skip
            _attach(f.create_dataset(name, data=data), pt)
        for key, _values in plan.axes.items():
            vals = axis_values([p.axes[key] for p in plan.points])
            ds = f.create_dataset(key, data=_strings(vals) if vals.dtype == object else vals)
            _attach(ds, pt)
        ds = f.create_dataset("loss_quantile", data=np.stack([r["loss_quantile"] for _, r in rows]))
        _attach(ds, pt, qs)
        ds = f.create_dataset("status_count", data=np.stack([r["status_count"] for _, r in rows]))
        _attach(ds, pt, ss)
        for name in ("success_rate", "steps_to_target"):
            _attach(f.create_dataset(name, data=np.array([r[name] for _, r in rows])), pt)
        data_vars = ["loss_quantile", "status_count", "success_rate", "steps_to_target"]
        basins = list(dict.fromkeys(b for _, r in rows for b in r.get("basins", {})))
        if basins:  # analysed points: fraction of particles in each attractor (NaN: not analysed)
            bs = _scale(f, "basin", np.arange(len(basins), dtype=np.int64))
            _attach(f.create_dataset("basin_name", data=_strings(basins)), bs)
            frac = np.array([[r["basins"].get(b, 0.0) if "basins" in r else np.nan for b in basins] for _, r in rows])
            _attach(f.create_dataset("basin_fraction", data=frac), pt, bs)
            data_vars.append("basin_fraction")
        if plan.same_shapes():
            data_vars += _virtual_finals(f, plan, pt)
        for name in data_vars:
            f[name].attrs["coordinates"] = " ".join(coords)
        f["status_count"].attrs["coordinates"] = " ".join([*coords, "status_name"])
        if basins:
            f["basin_fraction"].attrs["coordinates"] = " ".join([*coords, "basin_name"])
        for name in ("trajectory_x", "trajectory_loss"):
            if name in f:
                f[name].attrs["coordinates"] = " ".join([*coords, "step"])
    os.replace(tmp, out)
    return out


def _virtual_finals(f: h5py.File, plan: SweepPlan, pt: h5py.Dataset) -> list[str]:
    """Virtual datasets stacking each point's /final, /init and /trajectory along ``point``."""
    r0 = plan.points[0].run
    n, d, r = r0.particles, r0.dim, r0.n_records
    dtypes = {p.run.dtype for p in plan.points}
    real = np.dtype(dtypes.pop()) if len(dtypes) == 1 else np.dtype(np.float64)
    ps = _scale(f, "particle", np.arange(n, dtype=np.int64))
    ds_ = _scale(f, "dim", np.arange(d, dtype=np.int64))
    rs = _scale(f, "record", np.arange(r, dtype=np.int64))
    _attach(f.create_dataset("step", data=np.arange(r, dtype=np.int64) * r0.record_every), rs)
    names = []
    for name, src, fill in FINAL_FIELDS:
        shape: tuple[int, ...] = {"final_x": (n, d), "init_x": (n, d), "trajectory_x": (n, r, d),
                                  "trajectory_loss": (n, r)}.get(name, (n,))  # fmt: skip
        dt = {"final_status": np.dtype(np.int8), "final_stop_step": np.dtype(np.int64)}.get(name, real)
        layout = h5py.VirtualLayout(shape=(len(plan.points), *shape), dtype=dt)
        for i, p in enumerate(plan.points):
            layout[i] = h5py.VirtualSource(p.file_name, src, shape=shape, dtype=dt)
        ds = f.create_virtual_dataset(name, layout, fillvalue=fill)
        scales = {1: (pt, ps), 2: (pt, ps, ds_), 3: (pt, ps, rs, ds_)}[len(shape)]
        if name == "trajectory_loss":
            scales = (pt, ps, rs)
        _attach(ds, *scales)
        names.append(name)
    return names


def read_sweep_spec(directory: Path) -> str | None:
    """The spec JSON stored in ``DIRECTORY/sweep.h5`` (None if there is no readable index)."""
    try:
        with h5py.File(Path(directory) / INDEX_NAME, "r") as f:
            if f.attrs.get("format") != SWEEP_FORMAT:
                return None
            return str(f.attrs["spec"])
    except (OSError, KeyError):
        return None


# ----------------------------------------------------------------------------- shards


def write_shard_index(out: Path, shards: Sequence[Path]) -> Path:
    """Write ``out``: a run file whose datasets are virtual concatenations of the shards'.

    The shards are complete run files of one spec with consecutive particle
    ranges (attrs ``particle_start``, ``particle_stop``). Written atomically.
    """
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    files = [h5py.File(p, "r") for p in shards]
    try:
        starts = [int(g.attrs["particle_start"]) for g in files]
        stops = [int(g.attrs["particle_stop"]) for g in files]
        total = int(files[0].attrs["particles"])
        if starts[0] != 0 or stops[-1] != total or any(a != b for a, b in zip(starts[1:], stops[:-1], strict=True)):
            raise ValueError(f"shards do not tile [0, {total}): {list(zip(starts, stops, strict=True))}")
        specs = {g.attrs["spec"] for g in files}
        if len(specs) != 1:
            raise ValueError("shards of different specs")
        rel = [os.path.relpath(p, out.parent) for p in shards]
        with h5py.File(tmp, "w") as f:
            attrs = dict(files[0].attrs)
            attrs.update({
                "particle_start": 0, "particle_stop": total,
                "complete": all(bool(g.attrs.get("complete", False)) for g in files),
                "wall_time": float(sum(float(g.attrs.get("wall_time", 0.0)) for g in files)),
                "compile_time": float(sum(float(g.attrs.get("compile_time", 0.0)) for g in files)),
                "finished": max(str(g.attrs.get("finished", "")) for g in files),
                "shards": json.dumps(rel), "shard_ranges": json.dumps(list(zip(starts, stops, strict=True))),
            })  # fmt: skip
            f.attrs.update(attrs)
            for group in ("init", "trajectory", "final", "metrics", "data"):
                if group in files[0]:
                    _shard_group(f.create_group(group), [g[group] for g in files], rel, starts, stops, total)
    finally:
        for g in files:
            g.close()
    os.replace(tmp, out)
    return out


def _shard_group(dst: h5py.Group, srcs: list[h5py.Group], rel: list[str], starts: list[int], stops: list[int],
                 total: int) -> None:  # fmt: skip
    first = srcs[0]
    made: dict[str, h5py.Dataset] = {}
    labels: dict[str, list[str]] = {}
    for name in first:
        obj = first[name]
        if not isinstance(obj, h5py.Dataset):
            continue
        is_scale = obj.is_scale
        lab = [obj.dims[i].label for i in range(obj.ndim)]
        if is_scale and name == "particle":
            ds = dst.create_dataset(name, data=np.arange(total, dtype=obj.dtype))
        elif not is_scale and obj.ndim and lab[0] == "particle":
            layout = h5py.VirtualLayout(shape=(total, *obj.shape[1:]), dtype=obj.dtype)
            for g, fname, a, b in zip(srcs, rel, starts, stops, strict=True):
                layout[a:b] = h5py.VirtualSource(fname, g[name].name, shape=g[name].shape, dtype=obj.dtype)
            ds = dst.create_virtual_dataset(name, layout, fillvalue=_fill(obj.dtype))
        else:
            ds = dst.create_dataset(name, data=obj[()])
        for k, v in obj.attrs.items():
            if k not in _SCALE_ATTRS:
                ds.attrs[k] = v
        if is_scale:
            ds.make_scale(name)
        made[name] = ds
        labels[name] = lab
    for name, ds in made.items():
        if ds.is_scale:
            continue
        for i, lab in enumerate(labels[name]):
            if lab and lab in made:
                ds.dims[i].attach_scale(made[lab])
                ds.dims[i].label = lab


def _fill(dt: np.dtype) -> Any:
    return np.nan if np.issubdtype(dt, np.floating) else -1


def describe_sweep(path: str | Path) -> str | None:
    """What ``descentlab info`` prints for a sweep directory or its ``sweep.h5`` (None: not a sweep)."""
    path = Path(path)
    if path.is_dir():
        path = path / INDEX_NAME
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != SWEEP_FORMAT:
                return None
            axes = json.loads(f.attrs["axes"])
            status = [s.decode() if isinstance(s, bytes) else str(s) for s in f["point_status"][...]]
            files = [s.decode() if isinstance(s, bytes) else str(s) for s in f["file"][...]]
            cols = {k: f[k][...] for k in axes}
            med = f["loss_quantile"][:, QUANTILES.index(0.5)]
            succ = f["success_rate"][...]
            stacked = "final_x" in f
    except (OSError, KeyError):
        return None
    done = sum(s == "complete" for s in status)
    lines = [f"{path}: descentlab sweep, {len(status)} points ({done} complete), axes {axes}",
             "  per-point /final, /init, /trajectory stacked as virtual datasets" if stacked
             else "  points differ in shape: summary numbers only (no stacked datasets)"]  # fmt: skip
    for i, (st, fn) in enumerate(zip(status, files, strict=True)):
        vals = ", ".join(f"{k}={_text(cols[k][i])}" for k in axes)
        lines.append(f"  {i:>4} {st:<9} {fn}  {vals}  median loss {med[i]:.4g}  success {succ[i]:.3g}")
    return "\n".join(lines)


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else f"{v:.4g}" if isinstance(v, float | np.floating) else str(v)

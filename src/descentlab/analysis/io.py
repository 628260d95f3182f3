"""Files of an analysis: reading a run, the sidecar file (atomic write), its summary."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .result import AnalysisResult, RunData

ANALYSIS_VERSION = 2
#: The sidecar file of a run's analysis: ``RUN.h5`` -> ``RUN.h5.analysis``.
ANALYSIS_SUFFIX = ".analysis"
ANALYSIS_FORMAT = "descentlab.analysis"


def read_run(path: str | Path) -> tuple[RunData, Any]:
    """Open a run file; returns (RunData with lazy trajectories, the open h5py file)."""
    import h5py

    f = h5py.File(path, "r")
    if f.attrs.get("format") != "descentlab.run":
        f.close()
        raise ValueError(f"{path}: not a descentlab run file")
    spec = json.loads(f.attrs["spec"])
    complete = bool(f.attrs.get("complete", False))
    if not complete:
        f.close()
        raise ValueError(f"{path}: the run is incomplete; finish it (descentlab run --resume) before analysing")
    data = RunData(
        spec=spec, init_x=f["init/x"][...], final_x=f["final/x"][...], final_loss=f["final/loss"][...],
        status=f["final/status"][...], stop_step=f["final/stop_step"][...], record_steps=f["trajectory/step"][...],
        trajectory_loss=f["trajectory/loss"], trajectory_x=f["trajectory/x"],
    )  # fmt: skip
    return data, f


def analysis_path(path: str | Path) -> Path:
    """The sidecar file that holds the analysis of the run file ``path``."""
    path = Path(path)
    return path.with_name(path.name + ANALYSIS_SUFFIX)


def run_fingerprint(attrs: Mapping[str, Any]) -> str:
    """Identity of a complete run file (its spec and times), stored in its analysis sidecar."""
    import hashlib

    key = json.dumps([str(attrs.get(k, "")) for k in ("spec", "created", "finished", "wall_time", "seed")])
    return hashlib.sha256(key.encode()).hexdigest()


def _write(path: str | Path, ar: AnalysisResult, fingerprint: str) -> Path:
    """Write the analysis of run file ``path`` into its sidecar, atomically; returns the sidecar's path."""
    import h5py

    from ..engine.store import StoreError, disk_full

    side = analysis_path(path)
    if side.exists() and not _is_sidecar(side):
        raise StoreError(f"PATH: {side} exists and is not a descentlab analysis file; not replacing it")
    tmp = side.with_name(f".{side.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update({"format": ANALYSIS_FORMAT, "complete": False, "run_fingerprint": fingerprint,
                            "run_file": Path(path).name})  # fmt: skip
            _write_group(f, ar)
            f.attrs["complete"] = True
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, side)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError | RuntimeError) and disk_full(exc):
            raise StoreError(f"PATH: disk full while writing the analysis {side}; the run file {path} is "
                             "untouched; free some space and analyse again") from None  # fmt: skip
        if isinstance(exc, OSError):
            raise StoreError(f"PATH: cannot write the analysis {side} ({exc}); the run file is untouched") from None
        raise
    return side


def _is_sidecar(side: Path) -> bool:
    import h5py

    try:
        with h5py.File(side, "r", locking=False) as f:
            return f.attrs.get("format") == ANALYSIS_FORMAT
    except OSError:
        return False


def put(g: Any, name: str, data: Any, dims: tuple[str, ...], attrs: Mapping[str, Any] | None = None) -> Any:
    """Create dataset ``name`` in h5py group ``g`` with named dimensions ``dims``.

    Each dimension is an HDF5 dimension scale of that name in ``g`` (``arange`` of its
    length, created on first use), so xarray (``engine="h5netcdf"``) opens the group with
    these names instead of ``phony_dim_*``. Lists and string arrays are stored as UTF-8
    strings; ``attrs`` values that are not scalars or strings are stored as JSON.
    """
    import h5py

    arr = data if isinstance(data, np.ndarray) else None
    if arr is None and isinstance(data, list | tuple) and (not data or isinstance(data[0], str)):
        ds = g.create_dataset(name, data=np.array([str(v) for v in data], dtype=object), dtype=h5py.string_dtype())
    else:
        arr = np.asarray(data)
        if arr.dtype.kind in "OU":
            ds = g.create_dataset(name, data=arr.astype(object), dtype=h5py.string_dtype())
        else:
            ds = g.create_dataset(name, data=arr)
    if ds.ndim == 1 and dims and dims[0] == name:  # a coordinate variable: the dimension scale itself
        ds.make_scale(name)
        dims = ()
    for i, d in enumerate(dims[: ds.ndim]):
        scale = g.get(d)
        if scale is None:
            scale = g.create_dataset(d, data=np.arange(ds.shape[i], dtype=np.int64))
            scale.make_scale(d)
        elif scale.shape[0] != ds.shape[i]:
            raise ValueError(f"/{g.name}/{name}: dimension {d!r} has length {scale.shape[0]}, not {ds.shape[i]}")
        ds.dims[i].attach_scale(scale)
        ds.dims[i].label = d
    for k, v in (attrs or {}).items():
        ds.attrs[k] = v if isinstance(v, str | int | float) else json.dumps(v)
    return ds


def _write_group(f: Any, ar: AnalysisResult) -> None:
    """The ``/analysis`` group: the summary, then the part of each registered analysis."""
    from .registry import ANALYSES

    g = f.create_group("analysis")
    g.attrs["summary"] = json.dumps(ar.summary)
    g.attrs["analysis_version"] = ANALYSIS_VERSION
    for an in ANALYSES.values():
        if an.write is not None:
            an.write(g, ar.results)


def _open_sidecar(path: str | Path) -> Any:
    """The open (h5py) sidecar of run file ``path`` if it holds a whole analysis of this run, else None."""
    import h5py

    side = analysis_path(path)
    if not side.exists():
        return None
    try:
        with h5py.File(path, "r", locking=False) as run:
            fingerprint = run_fingerprint(run.attrs)
        f = h5py.File(side, "r", locking=False)
    except OSError:
        return None
    ok = (f.attrs.get("format") == ANALYSIS_FORMAT and bool(f.attrs.get("complete", False))
          and f.attrs.get("run_fingerprint") == fingerprint and "analysis" in f)  # fmt: skip
    if not ok:
        f.close()
        return None
    return f


def read_summary(path: str | Path) -> dict[str, Any] | None:
    """The analysis summary of a run file (from its sidecar), or None if it has no whole analysis of this run."""
    f = _open_sidecar(path)
    if f is None:
        return None
    with f:
        return json.loads(f["analysis"].attrs["summary"])

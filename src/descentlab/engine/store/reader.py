"""Reading a run file (:func:`open_run`): needs only h5py and NumPy; nothing is compiled."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ...core.hdf5 import foreign_storage, shard_sources
from ...core.status import STATUS_CODES
from .format import FORMAT, PARTIAL_SUFFIX, StoreError

_REQUIRED_ATTRS = ("format_version", "spec", "steps", "record_every", "dtype", "target", "seed", "rng", "created",
                   "finished", "descentlab_version", "numba_version", "numpy_version", "h5py_version",
                   "hdf5_version")  # fmt: skip


class RunFile:
    """A run file opened for reading; datasets are lazy ``h5py.Dataset`` objects.

    Attributes: ``spec`` (the resolved spec, a dict), ``attrs`` (root attributes),
    ``complete``, ``steps_done``; properties give the datasets of the run-file
    table (``init_x``, ``trajectory_step``, ``trajectory_x``, ``trajectory_loss``,
    ``final_x``, ``final_loss``, ``final_grad_norm``, ``status``, ``stop_step``).
    For a partial file only the first ``records`` records are valid.
    """

    def __init__(self, path: str | Path, locking: bool | None = None) -> None:
        self.path = Path(path)
        try:
            self.file = h5py.File(self.path, "r", locking=locking)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open as HDF5 ({exc})") from None
        try:
            if self.file.attrs.get("format") != FORMAT:
                raise StoreError(f"{self.path}: not a descentlab run file")
            self.attrs = dict(self.file.attrs)
            # a temporary file is never complete, even in the instant between its last write and the rename
            self.complete = bool(self.attrs.get("complete", False)) and not self.path.name.endswith(PARTIAL_SUFFIX)
            self.spec: dict[str, Any] = self._validate()
            self.steps_done = int(self.attrs.get("steps_done", 0))
        except RuntimeError as exc:  # HDF5 metadata caught mid-change by a writer (locking=False)
            self.file.close()
            raise StoreError(f"{self.path}: cannot read it just now ({exc}); a writer is changing it") from None
        except BaseException:
            self.file.close()
            raise

    def _validate(self) -> dict[str, Any]:
        """The spec of a well-formed run file; :class:`StoreError` naming what is missing or broken."""
        bad = f"{self.path}: damaged or foreign run file"
        missing = [k for k in _REQUIRED_ATTRS if k not in self.attrs]
        if missing:
            raise StoreError(f"{bad}: no root attribute {missing[0]!r}")
        try:
            spec = json.loads(self.attrs["spec"])
        except (TypeError, ValueError):
            raise StoreError(f"{bad}: its spec attribute is not valid JSON") from None
        if (not isinstance(spec, dict) or not isinstance(spec.get("landscape"), dict)
                or not {"name", "dim"} <= set(spec["landscape"]) or "optimizer" not in spec):  # fmt: skip
            raise StoreError(f"{bad}: its spec attribute is not a run spec")
        needed = ["init/x", "trajectory/step", "trajectory/x", "trajectory/loss"]
        needed += [f"final/{k}" for k in ("x", "loss", "grad_norm", "status", "stop_step")] if self.complete else []
        for name in needed:
            if not isinstance(self.file.get(name), h5py.Dataset):
                raise StoreError(f"{bad}: no dataset /{name}")
        foreign = foreign_storage(self.file, shard_sources(self.file))
        if foreign:
            raise StoreError(f"{self.path}: refused: {foreign}")
        if self.file["trajectory/x"].ndim != 3:
            raise StoreError(f"{bad}: /trajectory/x is not (particles, records, dims)")
        if not self.complete and "records" not in getattr(self.file.get("checkpoint"), "attrs", {}):
            raise StoreError(f"{bad}: an incomplete run without a /checkpoint")
        return spec

    def __getitem__(self, key: str) -> Any:
        return self.file[key]

    def __enter__(self) -> RunFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    @property
    def records(self) -> int:
        """Number of valid records (all of them in a complete file)."""
        if self.complete:
            return int(self.file["trajectory/step"].shape[0])
        return int(self.file["checkpoint"].attrs["records"])

    init_x = property(lambda self: self.file["init/x"])
    trajectory_step = property(lambda self: self.file["trajectory/step"])
    trajectory_x = property(lambda self: self.file["trajectory/x"])
    trajectory_loss = property(lambda self: self.file["trajectory/loss"])
    final_x = property(lambda self: self.file["final/x"])
    final_loss = property(lambda self: self.file["final/loss"])
    final_grad_norm = property(lambda self: self.file["final/grad_norm"])
    status = property(lambda self: self.file["final/status"])
    stop_step = property(lambda self: self.file["final/stop_step"])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(N particles, R records, D dims)."""
        n, r, d = self.file["trajectory/x"].shape
        return int(n), int(r), int(d)

    @property
    def layout(self) -> list[dict[str, Any]]:
        """A model run's parameter layout (``/model/layout``: one dict per tensor - name, kind,
        offset, size, shape, fan_in, fan_out); empty for a landscape without one."""
        if "model/layout" not in self.file:
            return []
        out = []
        for row in self.file["model/layout"][...]:
            r = {k: row[k] for k in row.dtype.names}
            for k in ("name", "kind", "shape"):
                r[k] = r[k].decode() if isinstance(r[k], bytes) else str(r[k])
            for k in ("offset", "size", "fan_in", "fan_out"):
                r[k] = int(r[k])
            r["shape"] = tuple(int(n) for n in r["shape"].split("x") if n)
            out.append(r)
        return out

    def status_counts(self) -> dict[str, int] | None:
        """Particles per final status (None while the run is incomplete)."""
        if not self.complete:
            return None
        counts = np.bincount(self.file["final/status"][...].astype(np.int64), minlength=len(STATUS_CODES))
        return {name: int(counts[k]) for k, name in STATUS_CODES.items()}

    def trajectory(self, particle: int) -> np.ndarray:
        """Recorded positions (R, D) of one particle."""
        return self.file["trajectory/x"][particle, : self.records, :]

    def to_xarray(self) -> Any:
        """The run as an ``xarray.Dataset`` in memory (layout in :mod:`descentlab.engine.xarray_view`: ``step``
        a coordinate, status with CF flags, the metrics of a model run under their file names).
        A partial run has no final state yet: :class:`StoreError`."""
        from ..xarray_view import run_dataset

        if not self.complete:
            raise StoreError(f"{self.path}: an incomplete run has no final state; finish it (descentlab run --resume)")
        f = self.file
        metrics = {}
        if "metrics" in f:
            metrics = {k: v[...] for k, v in f["metrics"].items() if isinstance(v, h5py.Dataset) and k != "layer"}
        keys = ("created", "finished", "wall_time", "compile_time", "target", "dtype")
        return run_dataset(
            self.spec, init_x=f["init/x"], trajectory_x=f["trajectory/x"], trajectory_loss=f["trajectory/loss"],
            record_steps=f["trajectory/step"], particle=f["init/particle"][...] if "particle" in f["init"] else None,
            final_x=f["final/x"], final_loss=f["final/loss"], grad_norm=f["final/grad_norm"], status=f["final/status"],
            stop_step=f["final/stop_step"], metrics=metrics, attrs={k: self.attrs[k] for k in keys if k in self.attrs},
        )  # fmt: skip

    def datasets(self) -> Iterator[tuple[str, h5py.Dataset]]:
        """Every dataset in the file as (path, dataset)."""
        found: list[tuple[str, h5py.Dataset]] = []
        self.file.visititems(lambda name, obj: found.append((name, obj)) if isinstance(obj, h5py.Dataset) else None)
        return iter(found)

    def describe(self) -> str:
        """A human-readable summary (what ``descentlab info`` prints)."""
        a, s = self.attrs, self.spec
        n, r, d = self.shape
        size = self.path.stat().st_size
        lines = [
            f"{self.path}: descentlab run file (format {a['format_version']}), "
            + ("complete" if self.complete else f"INCOMPLETE ({self.steps_done} of {a['steps']} steps checkpointed)"),
            f"  landscape   {s['landscape']['name']} (dim {s['landscape']['dim']})",
            f"  optimizer   {json.dumps(s['optimizer'])}",
            f"  particles   {n}   steps {a['steps']}   record_every {a['record_every']}   "
            f"records {self.records}/{r}   dims {d}",
            f"  dtype {a['dtype']}   target {a['target']}   seed {a['seed']}   rng {a['rng']}",
            f"  created {a['created']}   finished {a['finished'] or '-'}"
            + (f"   wall {a['wall_time']:.3g} s" if "wall_time" in a else "")
            + (f" (+ {a['compile_time']:.3g} s compiling/loading kernels)" if "compile_time" in a else ""),
            f"  versions    descentlab {a['descentlab_version']}, numba {a['numba_version']}, "
            f"numpy {a['numpy_version']}, h5py {a['h5py_version']} (HDF5 {a['hdf5_version']})",
            f"  file size   {size / 2**20:.1f} MiB",
        ]
        counts = self.status_counts()
        if counts is not None:
            lines.append("  status      " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
        lines.append("  datasets")
        for name, ds in self.datasets():
            if name.startswith("checkpoint/"):
                continue
            lines.append(f"    /{name:<22} {ds.shape!s:<20} {ds.dtype}")
        lines.append("  spec        " + json.dumps(s, sort_keys=True))
        return "\n".join(lines)

    def __repr__(self) -> str:
        n, r, d = self.shape
        return f"RunFile({str(self.path)!r}, N={n}, R={r}, D={d}, complete={self.complete})"


def open_run(path: str | Path, *, locking: bool | None = None) -> RunFile:
    """Open a run file for reading (lazy datasets; no Numba compilation).

    ``locking=False`` lets a reader look at a file that a run is still writing.
    """
    return RunFile(path, locking=locking)

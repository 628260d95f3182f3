"""Runs an experiment's grids on the sweep layer: in this process, or on Dask.

A grid is a base run spec plus a list of points, each a dict of dotted keys
(``"optimizer.lr": 0.1``; a whole table may be given, ``"optimizer": {...}``).
It becomes one sweep spec (a single ``[[sweep.zip]]`` group over every key
that varies), expanded and validated by :func:`descentlab.sweeps.spec.expand`.
Locally each point is simulated in memory (:func:`descentlab.simulate`); with
``dask`` the sweep is written to run files by :func:`descentlab.sweep` on the
cluster and read back. Either way the experiment gets one
:class:`~descentlab.Result`-like record per point, in order, and the sweep spec
is kept to be written next to the results (rerun with ``descentlab sweep``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

ABSENT = "-"


def _get_dotted(spec: Mapping[str, Any], key: str) -> Any:
    node: Any = spec
    for part in key.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return ABSENT
    return copy.deepcopy(node)


def _flatten(base: Mapping[str, Any], point: Mapping[str, Any]) -> dict[str, Any]:
    """A point with whole tables (``"optimizer": {...}``) as dotted keys (keys of the base's table it lacks: absent)."""
    out: dict[str, Any] = {}
    for k, v in point.items():
        if "." not in k and isinstance(v, Mapping):
            old = base.get(k, {})
            for sub in [*old, *(s for s in v if s not in old)]:
                out[f"{k}.{sub}"] = copy.deepcopy(v[sub]) if sub in v else ABSENT
        else:
            out[k] = v
    return out


def sweep_spec(base: Mapping[str, Any], points: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The sweep spec (base + ``[sweep]`` zip group) whose points are ``points`` in order."""
    spec = copy.deepcopy(dict(base))
    points = [_flatten(base, p) for p in points]
    keys: list[str] = []
    for p in points:
        for k in p:
            if k not in keys:
                keys.append(k)
    if not points:
        return spec
    if not keys:
        keys = ["run.seed"]
    group = {k: [p[k] if k in p else _get_dotted(base, k) for p in points] for k in keys}
    spec["sweep"] = {"zip": [group]}
    return spec


def _from_file(path: Path) -> Any:
    """A Result-like record (the fields experiments use) from a run file."""
    import h5py

    from .. import open_run

    with open_run(path) as rf:
        f = rf.file
        import json

        rec = SimpleNamespace(
            spec=json.loads(f.attrs["spec"]),
            init_x=f["init/x"][()],
            final_x=f["final/x"][()],
            final_loss=f["final/loss"][()],
            grad_norm=f["final/grad_norm"][()],
            status=f["final/status"][()],
            stop_step=f["final/stop_step"][()],
            record_steps=f["trajectory/step"][()],
            trajectory_x=f["trajectory/x"][()],
            trajectory_loss=f["trajectory/loss"][()],
            wall_time=float(f.attrs.get("wall_time", np.nan)),
            compile_time=float(f.attrs.get("compile_time", 0.0)),
            metrics={},
        )
        if "metrics" in f:
            for k, ds in f["metrics"].items():
                if isinstance(ds, h5py.Dataset) and k not in ("train_loss", "epoch_updates", "epoch_wall_time"):
                    rec.metrics[k.removeprefix("init_") if k.startswith("init_") else k] = ds[()]
    return rec


class Runner:
    """Runs grids for experiments (``dask=None``: in memory, in this process).

    ``dask``: ``"local"`` or a scheduler address; the run files go to
    ``work_dir/KEY`` (default: the experiment's folder). ``runs`` counts the
    points run since :meth:`reset`; ``specs`` holds each grid's sweep spec.
    """

    def __init__(self, dask: str | None = None, work_dir: str | Path | None = None) -> None:
        self.dask = dask
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.specs: dict[str, dict[str, Any]] = {}
        self.runs = 0
        self.folder: Path | None = None

    def reset(self, folder: Path | None = None) -> None:
        self.specs = {}
        self.runs = 0
        self.folder = folder

    def grid(self, key: str, base: Mapping[str, Any], points: Sequence[Mapping[str, Any]] | None = None) -> list[Any]:
        """Run ``base`` at each of ``points`` (none: ``base`` once); returns one result per point, in order."""
        from .. import simulate
        from ..sweeps.spec import expand

        if key in self.specs:
            raise ValueError(f"grid {key!r} was already run in this experiment")
        points = list(points) if points else []
        spec = sweep_spec(base, points)
        self.specs[key] = spec
        plan = expand(spec)
        self.runs += len(plan.points)
        if self.dask is None:
            return [simulate(p.run) for p in plan.points]
        from .. import sweep

        root = self.work_dir if self.work_dir is not None else (self.folder or Path("."))
        out = root / "runs" / key
        if out.exists():  # a fresh sweep: an earlier run of this grid may have had other specs
            import shutil

            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        sweep(spec, out=out, dask=self.dask)
        return [_from_file(out / p.file_name) for p in plan.points]

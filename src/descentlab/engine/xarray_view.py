"""Runs as ``xarray.Dataset`` objects (for notebooks): :meth:`descentlab.Result.to_xarray` and
:meth:`descentlab.engine.store.RunFile.to_xarray` (``descentlab.open_run(path).to_xarray()``).

Layout (the run file's, with names):

=====================  ==========================  ==========================================
variable               dims                        meaning
=====================  ==========================  ==========================================
``init_x``             (particle, dim)             initial positions
``trajectory_x``       (particle, record, dim)     recorded positions
``trajectory_loss``    (particle, record)          loss at each record
``final_x``            (particle, dim)             last position
``final_loss``         (particle,)                 loss there
``grad_norm``          (particle,)                 gradient norm there
``status``             (particle,)                 int8 with CF ``flag_values`` / ``flag_meanings``
``stop_step``          (particle,)                 step of convergence / divergence, -1 never
metrics (model runs)   (particle, record) ...      the run file's ``/metrics`` names
=====================  ==========================  ==========================================

Coordinates: ``particle`` (global particle index), ``record``, ``step`` (record) the step of
each record, ``dim``; for model runs ``parameter`` (dim) the name of each parameter
(``layer0.weight[2,1]``), ``tensor`` (dim) its tensor (``layer0.weight``) and ``tensor_kind``
(``weight``, ``bias``, ``bn_gamma`` ...), and ``layer`` for per-layer metrics. The resolved
spec is the JSON attribute ``spec``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

#: Status codes of the run file (``/final/status``) and their CF flag meanings.
STATUS_FLAGS = {0: "ran_all_steps", 1: "converged", 2: "diverged", 3: "left_the_bound"}


def status_attrs() -> dict[str, Any]:
    """CF attributes of the status variable (``flag_values`` / ``flag_meanings``)."""
    return {
        "long_name": "final status of the particle",
        "flag_values": np.array(list(STATUS_FLAGS), dtype=np.int8),
        "flag_meanings": " ".join(STATUS_FLAGS.values()),
    }


def parameter_coords(spec: Mapping[str, Any], dim: int) -> dict[str, Any]:
    """Coordinates naming each parameter of a model run (``{}`` for other landscapes)."""
    try:
        from .spec import parse_spec

        rs = parse_spec(dict(spec), memory_check=False)
    except Exception:
        return {}
    if rs.finite_sum is None:
        return {}
    layout = rs.finite_sum.model.layout
    names, tensors, kinds = [""] * dim, [""] * dim, [""] * dim
    for e in layout:
        idx = np.ndindex(*e.shape)
        for k, pos in zip(range(e.slice.start, e.slice.stop), idx, strict=False):
            names[k] = f"{e.name}[{','.join(str(i) for i in pos)}]"
            tensors[k] = e.name
            kinds[k] = str(e.kind)
    return {"parameter": ("dim", np.array(names, dtype=object)), "tensor": ("dim", np.array(tensors, dtype=object)),
            "tensor_kind": ("dim", np.array(kinds, dtype=object))}  # fmt: skip


def run_dataset(
    spec: Mapping[str, Any],
    *,
    init_x: Any,
    trajectory_x: Any,
    trajectory_loss: Any,
    record_steps: Any,
    final_x: Any,
    final_loss: Any,
    grad_norm: Any,
    status: Any,
    stop_step: Any,
    particle: Any = None,
    metrics: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> Any:
    """An ``xarray.Dataset`` of a run from its arrays (see the module docstring); arrays may be
    NumPy or lazy (h5py datasets are read here)."""
    import xarray as xr

    fx = np.asarray(final_x)
    n, d = fx.shape
    steps = np.asarray(record_steps, dtype=np.int64)
    r = steps.shape[0]
    pid = np.arange(n, dtype=np.int64) if particle is None else np.asarray(particle, dtype=np.int64)
    data = {
        "init_x": (("particle", "dim"), np.asarray(init_x)),
        "trajectory_x": (("particle", "record", "dim"), np.asarray(trajectory_x[:, :r])),
        "trajectory_loss": (("particle", "record"), np.asarray(trajectory_loss[:, :r])),
        "final_x": (("particle", "dim"), fx),
        "final_loss": (("particle",), np.asarray(final_loss)),
        "grad_norm": (("particle",), np.asarray(grad_norm)),
        "status": (("particle",), np.asarray(status, dtype=np.int8), status_attrs()),
        "stop_step": (("particle",), np.asarray(stop_step, dtype=np.int64),
                      {"long_name": "step at which it converged / diverged / left the bound", "missing": -1}),
    }  # fmt: skip
    coords: dict[str, Any] = {
        "particle": ("particle", pid), "record": ("record", np.arange(r, dtype=np.int64)),
        "step": ("record", steps), "dim": ("dim", np.arange(d, dtype=np.int64)),
        **parameter_coords(spec, d),
    }  # fmt: skip
    for name, arr in (metrics or {}).items():
        a = np.asarray(arr)
        if name == "epoch_wall_time" or name == "epoch_updates":
            data[name] = (("epoch",), a)
        elif a.ndim == 2 and a.shape == (n, r):
            data[name] = (("particle", "record"), a)
        elif a.ndim == 2 and a.shape[0] == n:
            data[name] = (("particle", "layer"), a)
            coords.setdefault("layer", ("layer", np.arange(a.shape[1], dtype=np.int64)))
        else:
            data[name] = (tuple(f"{name}_{k}" for k in range(a.ndim)), a)
    ds = xr.Dataset(data, coords=coords)
    ds.attrs["spec"] = json.dumps(dict(spec))
    for k, v in (attrs or {}).items():
        if isinstance(v, str | int | float | bool | np.integer | np.floating):
            ds.attrs[k] = v.item() if isinstance(v, np.generic) else v
    return ds

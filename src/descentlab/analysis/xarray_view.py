"""An analysis as an ``xarray.Dataset`` (:meth:`AnalysisResult.to_xarray`).

Dims: ``particle`` (``label``, ``steps_to_target``), ``attractor`` (coordinate ``attractor``
the names; ``attractor_position`` (attractor, dim), ``attractor_eigenvalues`` (attractor,
eigen), ``attractor_loss``, ``attractor_fraction`` ...), ``outcome`` (coordinate the outcome
names, ``outcome_code``, ``outcome_fraction`` ...), ``target`` (the precisions),
``budget`` (``ecdf``), ``record`` with coordinate ``step`` (``loss_quantile`` (quantile,
record)), ``x0, x1 ...`` for the basin map of a grid; with the views of D > 2, ``pca_*``
(pc, dim / pca_sample, record, pc), ``plane_loss`` (alpha, beta), ``sharpness_path``
(sharpness_sample, sharpness_record). Attributes: ``summary`` (JSON),
``f_ref`` and ``reference_kind`` of the targets, ``label_codes`` (JSON).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .attractors import OUTCOME_CODES


def analysis_dataset(ar: Any) -> Any:
    """The :class:`~descentlab.analysis.AnalysisResult` ``ar`` as an ``xarray.Dataset``."""
    import xarray as xr

    att, cp, oc, cv = ar.attractors, ar.critical, ar.outcomes, ar.convergence
    k = att.n
    data: dict[str, Any] = {
        "label": (("particle",), np.asarray(att.labels, dtype=np.int64),
                  {"long_name": "attractor of each particle, or a negative outcome code",
                   "flag_values": np.array(sorted(OUTCOME_CODES), dtype=np.int64),
                   "flag_meanings": " ".join(OUTCOME_CODES[c].replace(" ", "_") for c in sorted(OUTCOME_CODES))}),
        "attractor_kind": (("attractor",), np.array(att.kinds, dtype=object)),
        "attractor_known": (("attractor",), np.array(att.known, dtype=object)),
        "attractor_count": (("attractor",), np.asarray(att.counts)),
        "attractor_loss": (("attractor",), np.asarray(att.losses)),
        "attractor_extent": (("attractor",), np.asarray(att.extents)),
        "attractor_position": (("attractor", "dim"), np.asarray(att.positions)),
        "attractor_eigenvalues": (("attractor", "eigen"), np.asarray(cp.eigenvalues)),
        "attractor_classification": (("attractor",), np.array(cp.classes, dtype=object)),
        "attractor_sharpness": (("attractor",), np.asarray(cp.sharpness)),
        "attractor_trace": (("attractor",), np.asarray(cp.trace)),
        "attractor_index": (("attractor",), np.asarray(cp.index), {"long_name": "number of negative eigenvalues"}),
        "attractor_index_fraction": (("attractor",), np.asarray(cp.index_fraction)),
        "attractor_grad_norm": (("attractor",), np.asarray(cp.grad_norm)),
        "attractor_fraction": (("attractor",), np.asarray(oc["fraction"][:k])),
        "attractor_ci_low": (("attractor",), np.asarray(oc["ci_low"][:k])),
        "attractor_ci_high": (("attractor",), np.asarray(oc["ci_high"][:k])),
        "outcome_code": (("outcome",), np.asarray(oc["code"])),
        "outcome_count": (("outcome",), np.asarray(oc["count"])),
        "outcome_fraction": (("outcome",), np.asarray(oc["fraction"])),
        "outcome_ci_low": (("outcome",), np.asarray(oc["ci_low"])),
        "outcome_ci_high": (("outcome",), np.asarray(oc["ci_high"])),
        "steps_to_target": (("particle", "target"), np.asarray(cv["steps_to_target"]),
                            {"long_name": "first step within each target (-1 never)"}),
        "ecdf": (("budget",), np.asarray(cv["ecdf"])),
        "loss_quantile": (("quantile", "record"), np.asarray(cv["loss_quantile"])),
    }  # fmt: skip
    coords: dict[str, Any] = {
        "attractor": ("attractor", np.array(att.names, dtype=object)),
        "outcome": ("outcome", np.array(ar.outcome_names(), dtype=object)),
        "target": ("target", np.asarray(cv["targets"])),
        "budget": ("budget", np.asarray(cv["ecdf_budget"])),
        "step": ("record", np.asarray(cv["record_step"])),
        "quantile": ("quantile", np.asarray(cv["quantile_level"])),
    }
    if ar.basin_map is not None:
        grid = np.asarray(ar.basin_map)
        data["basin_map"] = (tuple(f"x{i}" for i in range(grid.ndim)), grid)
    pca = ar.results.get("pca")
    if pca is not None:
        data["pca_components"] = (("pc", "dim"), pca["components"])
        data["pca_explained"] = (("pc",), pca["explained"])
        data["pca_projection"] = (("pca_sample", "record", "pc"), pca["projection"])
        coords["pca_particle"] = ("pca_sample", pca["particle"])
    plane = ar.results.get("plane")
    if plane is not None:
        data["plane_loss"] = (("alpha", "beta"), plane["loss"], {"directions": plane["kind"]})
        data["plane_directions"] = (("direction", "dim"), plane["directions"])
        data["plane_center"] = (("dim",), plane["center"])
        coords.update({"alpha": ("alpha", plane["alpha"]), "beta": ("beta", plane["beta"])})
    sp = ar.results.get("sharpness_path")
    if sp is not None:
        data["sharpness_path"] = (("sharpness_sample", "sharpness_record"), sp["sharpness"])
        coords.update({"sharpness_particle": ("sharpness_sample", sp["particle"]),
                       "sharpness_step": ("sharpness_record", sp["step"])})  # fmt: skip
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update({"summary": json.dumps(ar.summary), "f_ref": float(cv["f_opt"]),
                     "reference_kind": str(cv["reference_kind"]),
                     "label_codes": json.dumps({str(c): n for c, n in OUTCOME_CODES.items()})})  # fmt: skip
    return ds

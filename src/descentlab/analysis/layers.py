"""Per-layer statistics of a model run at its record steps.

For each recorded position (particle, record) of a model trained on data:
``activation_mean``, ``activation_var`` (each affine layer's output after its
activation over the training set; the last layer's are the logits),
``gradient_mean``, ``gradient_var`` (the loss gradient back-propagated to each
layer's pre-activation, scaled by the number of samples; Glorot & Bengio 2010)
and ``weight_grad_norm`` (the Euclidean norm of the full-batch loss gradient
with respect to each layer's weight matrix: vanishing / exploding gradients),
each (n, R, L). Computed from the recorded trajectory (plain NumPy, the
reference model of :mod:`descentlab.models.reference`), so they need no
recording option: :meth:`descentlab.Result.layer_statistics`,
:func:`layer_statistics`, and the ``layers`` analysis (a sample of particles,
written to ``/analysis/layers``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .io import put
from .registry import Analysis, Context, register_analysis

#: Particles whose layer statistics the ``layers`` analysis computes (every record).
LAYER_PARTICLES = 16
NAMES = ("activation_mean", "activation_var", "gradient_mean", "gradient_var", "weight_grad_norm")


def layer_statistics(spec: Mapping[str, Any], trajectory_x: Any, particles: Any = None) -> dict[str, np.ndarray]:
    """Per-layer statistics (see the module doc) at every record of ``trajectory_x`` (n, R, D) of a model
    run with resolved ``spec``; ``particles``: rows to use (default all). Empty for a landscape without
    layers (analytic landscapes, the product model)."""
    from ..engine.spec import parse_spec
    from ..problems.finite_sum import layer_stats_at

    rs = parse_spec(dict(spec), memory_check=False)
    if rs.finite_sum is None:
        return {}
    rows = np.arange(trajectory_x.shape[0]) if particles is None else np.asarray(particles, dtype=np.int64)
    traj = np.asarray(trajectory_x[rows.tolist()] if not isinstance(trajectory_x, np.ndarray) else trajectory_x[rows],
                      dtype=np.float64)  # fmt: skip
    return layer_stats_at(rs.finite_sum, traj)


def _layers(ctx: Context) -> dict[str, Any] | None:
    from ..problems.finite_sum import MODEL_LANDSCAPES

    if ctx.spec.get("landscape", {}).get("name") not in MODEL_LANDSCAPES:
        return None
    rows = np.unique(np.linspace(0, ctx.n - 1, min(ctx.n, LAYER_PARTICLES)).astype(np.int64))
    stats = layer_statistics(ctx.spec, ctx.data.trajectory_x, rows)
    if not stats:
        return None
    return {"layers": {"particle": rows, "step": np.asarray(ctx.data.record_steps, dtype=np.int64), **stats}}


def _layers_write(g: Any, r: dict[str, Any]) -> None:
    e = r.get("layers")
    if e is None:
        return
    h = g.require_group("layers")
    put(h, "particle", e["particle"], ("sample",))
    put(h, "step", e["step"], ("record",))
    for name in NAMES:
        put(h, name, e[name], ("sample", "record", "layer"))


register_analysis(Analysis("layers", _layers, None, _layers_write))

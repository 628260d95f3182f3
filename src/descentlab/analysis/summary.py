"""The summary of an analysis (JSON-able) and its text."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        f = float(v)
        return f if math.isfinite(f) else None
    return v


def summary_text(summary: Mapping[str, Any]) -> str:
    """A readable multi-line summary of an analysis (what ``info`` and ``analyze`` print)."""
    s = summary
    oc = s.get("outcomes", {})
    n = max(1, int(s.get("particles", 1)))
    lines = [
        f"analysis of {s.get('label') or s.get('path', 'run')}: {s.get('landscape')} (D={s.get('dim')}), "
        f"{s.get('optimizer')}, {s.get('particles')} particles; tolerance {s.get('tolerance', 0):.3g}",
        "  outcomes    " + ", ".join(f"{k}: {v} ({v / n:.1%})" for k, v in oc.items()),
        f"  attractors  {s.get('n_attractors')}" + (f"  (settled: {s['settle_rule']})" if s.get("settle_rule") else ""),
    ]
    if s.get("hessians_not_computed"):
        lines.append(f"  NOTE        {s['hessians_not_computed']} attractors have no Hessian (eigenvalues, "
                     f"sharpness, trace, index NaN; 'not computed'): "
                     f"{s.get('hessians_not_computed_reason')}")  # fmt: skip
    for r in s.get("attractors", [])[:20]:
        ci = r.get("ci") or [float("nan")] * 2
        eig = r.get("eigenvalues")
        eig_s = "[" + ", ".join(f"{e:.4g}" for e in eig) + "]" if eig is not None else f"sharpness {r['sharpness']:.4g}"
        lines.append(f"    {r['name']:<28} {r['fraction']:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]  loss {r['loss']:.4g}  "
                     f"{r['classification']}  eig {eig_s}")  # fmt: skip
        if "manifold" in r:
            m = r["manifold"]
            lines.append(f"      manifold: {m.get('declared')}, {m.get('count')} end points, extent "
                         f"{m.get('extent', 0):.3g}, relation residual {m.get('relation_residual')}")  # fmt: skip
    if len(s.get("attractors", [])) > 20:
        lines.append(f"    ... {len(s['attractors']) - 20} more")
    for kp in s.get("known", []):
        eig = kp.get("eigenvalues")
        lines.append(f"  known {kp['kind']:<8} {kp['name']:<24} {kp['classification']}"
                     + (f"  eig [{', '.join(f'{e:.4g}' for e in eig)}]" if eig is not None else "")
                     + ("" if kp.get("attractor", -1) < 0 else "  (reached)"))  # fmt: skip
    if s.get("basin_map"):
        lines.append(f"  basins      boundary fraction {s['boundary_fraction']:.4f}, basin entropy "
                     f"{s['basin_entropy']:.4f}, boundary basin entropy {s['boundary_basin_entropy']:.4f}")  # fmt: skip
    if s.get("start_points"):
        lines.append(f"  start points {s['start_points']} distinct (outcome probabilities per point stored)")
    med = s.get("median_steps_to_target")
    ref = s.get("f_opt")
    ref_s = "-" if ref is None else f"{ref:.6g}"
    lines.append(f"  convergence f_ref {ref_s} ({s.get('reference_kind', '?')}); target f - f_ref <= "
                 f"{s.get('ecdf_target'):.0e} (diverged / left the bound never count): "
                 f"reached by {s.get('success_rate', 0):.1%}, median steps {med if med is not None else '-'}, "
                 f"ECDF area {s.get('ecdf_area', 0):.3f}")  # fmt: skip
    if s.get("census"):
        lines.append(f"  census      {s['census']} end points (index vs loss)")
    for k, v in (s.get("figures") or {}).items():
        lines.append(f"  figure      {k}: {v}")
    return "\n".join(lines)

"""Convergence: steps-to-target per particle, ECDFs (COCO style), loss quantile
bands, and a comparison table across runs.

Targets are COCO-style absolute precisions ``f - f_ref <= delta``; ``f_ref`` is
the lowest loss of the landscape's known minima, else the lowest loss that a
particle reached without diverging or leaving the bound (one reference shared
by every run that :func:`descentlab.analysis.compare` compares), or the one
given. Particles that diverged or left the bound never reach a target, even if
their loss passed it on the way.
A particle's steps-to-target is the first recorded step at which it is within
the target (exact for converged particles, whose ``stop_step`` is used when
their final loss is within it; otherwise it has the resolution of
``record_every``); -1 if it never got there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..core.status import Status

#: Default precisions delta of the targets f - f_opt <= delta.
TARGETS = (1e0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
#: Quantile levels of the loss bands.
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
#: Particles used for the loss bands at most (evenly strided).
BAND_PARTICLES = 100_000
#: Particles read per chunk from the trajectory.
CHUNK = 1 << 16


def steps_to_target(
    trajectory_loss: Any,
    record_steps: np.ndarray,
    final_loss: np.ndarray,
    status: np.ndarray,
    stop_step: np.ndarray,
    f_opt: float,
    targets: Sequence[float] = TARGETS,
) -> np.ndarray:
    """(N, T) int64 steps at which each particle first got within each target, -1 if never.

    ``trajectory_loss`` (N, R) may be an array or an ``h5py`` dataset (read in chunks).
    """
    record_steps = np.asarray(record_steps, dtype=np.int64)
    tg = np.asarray(targets, dtype=np.float64)
    n = int(np.asarray(final_loss).shape[0])
    out = np.full((n, tg.shape[0]), -1, dtype=np.int64)
    final_loss = np.asarray(final_loss, dtype=np.float64)
    status = np.asarray(status)
    stop_step = np.asarray(stop_step, dtype=np.int64)
    r = record_steps.shape[0]
    for a in range(0, n, CHUNK):
        b = min(n, a + CHUNK)
        gap = np.asarray(trajectory_loss[a:b, :r], dtype=np.float64) - f_opt
        for j, t in enumerate(tg):
            hit = gap <= t
            anyhit = hit.any(axis=1)
            first = np.argmax(hit, axis=1)
            out[a:b, j] = np.where(anyhit, record_steps[first], -1)
    # a particle that diverged or left the bound is a failure, whatever its loss on the way
    out[(status == Status.DIVERGED) | (status == Status.OUT_OF_BOUND)] = -1
    if not np.isfinite(f_opt):
        out[:] = -1
    conv = (status == Status.CONVERGED) & (stop_step >= 0)
    for j, t in enumerate(tg):
        ok = conv & (final_loss - f_opt <= t)
        cur = out[:, j]
        cur[ok] = np.where(cur[ok] >= 0, np.minimum(cur[ok], stop_step[ok]), stop_step[ok])
    return out


def ecdf(steps: np.ndarray, total_steps: int, points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """COCO-style ECDF: fraction of (particle, target) pairs reached within each budget.

    ``steps`` (N, T) from :func:`steps_to_target`. Returns (budgets (B,), fraction
    (B,)) on a log-spaced grid of budgets from 0 to ``total_steps``.
    """
    budgets = np.unique(np.concatenate([[0], np.round(np.geomspace(1, max(1, total_steps), points))])).astype(np.int64)
    flat = np.asarray(steps).ravel()
    if flat.size == 0:
        return budgets, np.zeros(budgets.shape)
    reached = np.sort(flat[flat >= 0])
    return budgets, np.searchsorted(reached, budgets, side="right") / flat.size


def loss_bands(trajectory_loss: Any, quantiles: Sequence[float] = QUANTILES,
               max_particles: int = BAND_PARTICLES, records: int | None = None) -> np.ndarray:  # fmt: skip
    """(Q, R) quantiles of the recorded loss over particles (at most ``max_particles``, strided)."""
    n = int(trajectory_loss.shape[0])
    r = int(trajectory_loss.shape[1]) if records is None else records
    stride = max(1, -(-n // max_particles))
    if stride == 1:
        sample = np.asarray(trajectory_loss[:, :r], dtype=np.float64)
    else:
        step = stride * max(1, CHUNK // stride)
        sample = np.concatenate(
            [
                np.asarray(trajectory_loss[a : min(n, a + step), :r], dtype=np.float64)[::stride]
                for a in range(0, n, step)
            ]
        )
    if sample.shape[0] == 0:
        return np.full((len(quantiles), r), np.nan)
    with np.errstate(invalid="ignore"):
        return np.nanquantile(np.where(np.isfinite(sample), sample, np.nan), quantiles, axis=0)


def comparison_table(summaries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per run from analysis summaries (see :func:`descentlab.analysis.analyze`)."""
    rows = []
    for s in summaries:
        oc = s.get("outcomes", {})
        n = max(1, int(s.get("particles", 1)))
        rows.append({
            "run": s.get("label", s.get("path", "?")),
            "optimizer": s.get("optimizer", "?"),
            "particles": int(s.get("particles", 0)),
            "attractors": int(s.get("n_attractors", 0)),
            "converged": oc.get("converged", 0) / n,
            "not settled": oc.get("not settled", 0) / n,
            "diverged or left": (oc.get("diverged", 0) + oc.get("left the bound", 0)) / n,
            "global": s.get("global_fraction"),
            "median loss": s.get("median_final_loss"),
            "f_ref": s.get("f_opt"),
            "target": s.get("ecdf_target"),
            "success": s.get("success_rate"),
            "median steps": s.get("median_steps_to_target"),
            "ECDF area": s.get("ecdf_area"),
        })  # fmt: skip
    return rows


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table of :func:`comparison_table` rows."""
    if not rows:
        return "(no runs)"
    cols = list(rows[0])

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return "-" if not np.isfinite(v) else f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)

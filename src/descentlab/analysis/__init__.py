"""Analysis of a run (from the HDF5 file alone): attractors, basins, critical
points, convergence; written to a sidecar file with figures.

``analyze(path, plots_dir=None)`` reads a run file (read-only: the run file is
never written by the analysis) and writes everything into the ``/analysis``
group of the sidecar file ``RUN.h5.analysis`` (:func:`analysis_path`). The
sidecar is built under a temporary name and moved into place with
:func:`os.replace` once whole, so a failed analysis (a full disk, a kill)
leaves the previous analysis, or none, never half of one. Its root attributes
``format = "descentlab.analysis"``, ``complete`` and ``run_fingerprint`` (of the
run file's spec and times) tie it to its run: a sidecar of another run (the
output overwritten since) is ignored. The layout of the group:

====================================  =========  ======================================
path                                  shape      meaning
====================================  =========  ======================================
``/analysis`` attrs ``summary``                  JSON summary (what ``info`` shows)
``/analysis/labels``                  (N,)       attractor of each particle; -1 not
                                                 converged, -2 diverged, -3 left the bound
``/analysis/attractors/*``            (K, ...)   position, name, kind, count, loss,
                                                 extent, known, eigenvalues (K, D),
                                                 classification, sharpness, trace,
                                                 index (number of negative eigenvalues),
                                                 index_fraction, grad_norm, fraction,
                                                 ci_low, ci_high
``/analysis/outcomes/*``              (K+3,)     code, name, count, fraction, ci_low,
                                                 ci_high (attractors + other outcomes)
``/analysis/known/*``                 (P, ...)   the landscape's known minima/saddles:
                                                 name, kind, position, eigenvalues,
                                                 classification, attractor (-1 none)
``/analysis/basin_map``               grid       labels on the grid (grid inits only)
``/analysis/start_points/*``          (S, ...)   x, count, probability (S, K+3), code
                                                 (only when starting points repeat)
``/analysis/convergence/*``                      targets (T,), f_opt, steps_to_target
                                                 (N, T) (-1 never), ecdf_budget,
                                                 ecdf, record_step, loss_quantile
                                                 (Q, R), quantile_level
``/analysis/census/*``                (M,)       loss, index (count of negative eigenvalues),
                                                 index_fraction, sharpness, row (D >= 3)
====================================  =========  ======================================

The core functions in the submodules take NumPy arrays; :func:`analyze_arrays`
runs the whole analysis on arrays (e.g. a :class:`descentlab.Result`).
"""

from __future__ import annotations

from .attractors import DIVERGED, LEFT_BOUND, NOT_CONVERGED, OUTCOME_CODES, Attractors, find_attractors
from .critical import LandscapeMath, ModelMath, classify
from .io import analysis_path, read_run, read_summary
from .pipeline import analyze, analyze_arrays, analyze_result, compare
from .result import AnalysisResult, RunData
from .summary import summary_text

__all__ = [
    "DIVERGED", "LEFT_BOUND", "NOT_CONVERGED", "OUTCOME_CODES", "AnalysisResult", "Attractors", "LandscapeMath",
    "ModelMath", "RunData", "analysis_path", "analyze", "analyze_arrays", "analyze_result", "classify", "compare",
    "find_attractors", "read_run", "read_summary", "summary_text",
]  # fmt: skip

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
output overwritten since) is ignored. Every dimension of the group is named (HDF5
dimension scales), so ``xarray.open_dataset(side, group="analysis/attractors",
engine="h5netcdf")`` works. The layout of the group (format version 2):

====================================  =========  ======================================
path                                  shape      meaning
====================================  =========  ======================================
``/analysis`` attrs ``summary``                  JSON summary (what ``info`` shows)
``/analysis/labels``                  (N,)       attractor of each particle; -1 not
                                                 settled, -2 diverged, -3 left the bound
                                                 (the rule: :mod:`.attractors`)
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
``/analysis/convergence/*``                      attrs f_opt (the reference f_ref),
                                                 reference_kind, record_every; targets
                                                 (T,), steps_to_target (N, T) (-1 never;
                                                 always -1 for diverged / left the
                                                 bound), ecdf_budget, ecdf, record_step,
                                                 loss_quantile (Q, R), quantile_level
``/analysis/census/*``                (M,)       loss, index (count of negative eigenvalues),
                                                 index_fraction, sharpness, row (D >= 3;
                                                 end points settled at an attractor)
``/analysis/pca/*``                              D > 2: mean, components (2, D), explained,
                                                 projection (S, R, 2), particle, step
``/analysis/plane/*``                            D > 2: alpha, beta, loss (A, B), center,
                                                 directions (2, D); attr directions_kind
``/analysis/sharpness_path/*``                   D > 2: particle, step, sharpness (S, R);
                                                 attr stability_limit (2 / lr, for sgd)
====================================  =========  ======================================

Each part is written by one registered analysis (:mod:`.registry`; the core ones in
:mod:`.steps`, the views in :mod:`.views`). The core functions in the submodules take
NumPy arrays; :func:`analyze_arrays` runs the whole analysis on arrays (e.g. a
:class:`descentlab.Result`); :meth:`AnalysisResult.to_xarray` gives it as an
``xarray.Dataset``.
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

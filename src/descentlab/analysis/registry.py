"""The registry of analyses: each one is a named step of the pipeline.

An analysis is an :class:`Analysis`: a ``compute`` function that reads the run
(a :class:`Context`) and returns its named results (or None when it does not
apply to this run), and optionally a ``summarize`` function (keys of the JSON
summary), a ``write`` function (its part of the ``/analysis`` group of the
sidecar file) and a ``figures`` function (its figures). Adding an analysis is
one function per part plus one :func:`register_analysis` call; the pipeline,
the file writer, :meth:`AnalysisResult.to_xarray` and ``analyze --plots`` pick
it up::

    def compute(ctx):
        return {"final_spread": float(np.nanstd(ctx.final_loss))}

    register_analysis(Analysis("final_spread", compute,
                               summarize=lambda ctx: {"final_spread": ctx.results["final_spread"]}))

Analyses run in registration order; a later one may read the results of an
earlier one from ``ctx.results``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .critical import LandscapeMath


@dataclass
class Options:
    """Settings of one analysis (see :func:`descentlab.analysis.analyze_arrays`)."""

    rel_tol: float
    eig_tol: float
    targets: Sequence[float]
    include_running: bool
    census: bool | None
    label: str
    move_tol: float | None
    reference: float | None
    views: bool | None


@dataclass
class Context:
    """What an analysis step sees: the run's data, its landscape, the options, earlier results.

    ``status`` (N,) int8, ``final_x`` (N, D), ``final_loss`` (N,) are the run's final arrays (NumPy);
    ``data.trajectory_x`` / ``data.trajectory_loss`` may be lazy ``h5py`` datasets.
    """

    data: Any
    lm: LandscapeMath
    options: Options
    status: np.ndarray
    final_x: np.ndarray
    final_loss: np.ndarray
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> dict[str, Any]:
        return self.data.spec

    @property
    def n(self) -> int:
        return int(self.status.shape[0])

    @property
    def dim(self) -> int:
        return self.lm.dim


@dataclass(frozen=True)
class Analysis:
    """One registered analysis step (see the module docstring).

    ``compute(ctx) -> dict | None``; ``summarize(ctx) -> dict`` (after every compute);
    ``write(group, results)`` into the open ``/analysis`` h5py group;
    ``figures(results, data, lm, out_dir, stem, title) -> {name: Path}``.
    """

    name: str
    compute: Callable[[Context], dict[str, Any] | None]
    summarize: Callable[[Context], dict[str, Any]] | None = None
    write: Callable[[Any, dict[str, Any]], None] | None = None
    figures: Callable[[dict[str, Any], Any, LandscapeMath, Path, str, str], dict[str, Path]] | None = None


#: The registered analyses, in the order they run.
ANALYSES: dict[str, Analysis] = {}


def register_analysis(analysis: Analysis) -> Analysis:
    """Add (or replace) an analysis step; returns it."""
    ANALYSES[analysis.name] = analysis
    return analysis

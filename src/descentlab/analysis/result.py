"""Records of an analysis: the run data it reads and the result it returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .attractors import OUTCOME_CODES


@dataclass
class RunData:
    """What the analysis reads from a run (arrays or lazy h5py datasets for the trajectory)."""

    spec: dict[str, Any]
    init_x: np.ndarray
    final_x: np.ndarray
    final_loss: np.ndarray
    status: np.ndarray
    stop_step: np.ndarray
    record_steps: np.ndarray
    trajectory_loss: Any
    trajectory_x: Any
    #: (N,) gradient norm at the end points, when the run stored it
    grad_norm: np.ndarray | None = None


class AnalysisResult:
    """Results of :func:`analyze` (see the package docstring for the file layout).

    ``summary`` the JSON summary; ``results`` every registered analysis's named results,
    also readable as attributes: ``attractors`` (:class:`Attractors`), ``critical``
    (:class:`~descentlab.analysis.critical.CriticalPoints` at the attractors), ``known``,
    ``outcomes``, ``basin_map``, ``start_points``, ``convergence``, ``census``, ...;
    ``figures`` {name: path} of the figures written.
    """

    def __init__(self, summary: dict[str, Any], results: dict[str, Any],
                 figures: dict[str, Path] | None = None) -> None:  # fmt: skip
        self.summary = summary
        self.results = results
        self.figures: dict[str, Path] = dict(figures or {})

    def __getattr__(self, name: str) -> Any:
        results = self.__dict__.get("results", {})
        if name in results:
            return results[name]
        if name in ("census", "basin_map", "start_points"):
            return None
        raise AttributeError(f"{type(self).__name__} has no attribute or result {name!r}")

    @property
    def labels(self) -> np.ndarray:
        """(N,) int64 attractor of each particle, or an outcome code (-1 not settled, -2 diverged, -3 left)."""
        return self.results["attractors"].labels

    def fraction(self, name: str) -> float:
        """Fraction of particles in the attractor (or outcome) called ``name`` ("not converged" is
        read as its new name, "not settled")."""
        names = self.outcome_names()
        if name == "not converged":
            name = "not settled"
        if name not in names:
            raise KeyError(f"no attractor or outcome {name!r}; have {names}")
        return float(self.outcomes["fraction"][names.index(name)])

    def outcome_names(self) -> list[str]:
        return [self.attractors.names[c] if c >= 0 else OUTCOME_CODES[int(c)] for c in self.outcomes["code"]]

    def to_xarray(self) -> Any:
        """The analysis as an ``xarray.Dataset`` (dims ``particle``, ``attractor``, ``outcome``,
        ``target``, ``record``, ...; the summary as the JSON attribute ``summary``)."""
        from .xarray_view import analysis_dataset

        return analysis_dataset(self)

    def __repr__(self) -> str:
        from .summary import summary_text

        return summary_text(self.summary)

"""Records of an analysis: the run data it reads and the result it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import critical as _crit
from .attractors import OUTCOME_CODES, Attractors


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


@dataclass
class AnalysisResult:
    """Results of :func:`analyze` (see the module docstring for the file layout)."""

    summary: dict[str, Any]
    attractors: Attractors
    critical: _crit.CriticalPoints
    known: dict[str, Any]
    outcomes: dict[str, np.ndarray]
    basin_map: np.ndarray | None
    start_points: dict[str, np.ndarray] | None
    convergence: dict[str, Any]
    census: dict[str, np.ndarray] | None
    figures: dict[str, Path] = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray:
        return self.attractors.labels

    def fraction(self, name: str) -> float:
        """Fraction of particles in the attractor (or outcome) called ``name``."""
        names = self.outcome_names()
        if name not in names:
            raise KeyError(f"no attractor or outcome {name!r}; have {names}")
        return float(self.outcomes["fraction"][names.index(name)])

    def outcome_names(self) -> list[str]:
        return [self.attractors.names[c] if c >= 0 else OUTCOME_CODES[int(c)] for c in self.outcomes["code"]]

    def __repr__(self) -> str:
        from .summary import summary_text

        return summary_text(self.summary)

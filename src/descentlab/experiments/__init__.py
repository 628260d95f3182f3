"""Experiments: each claim of the training lectures as a named, reproducible run with a figure and a verdict.

``descentlab experiment list | run NAME | all`` (:mod:`.cli`); in Python::

    from descentlab.experiments import get, run_all
    res = get("convex-single-basin").run("small", "out")   # out/convex-single-basin/...
    print(res.verdict.line())
"""

from __future__ import annotations

from .base import Experiment, ExperimentResult, Verdict
from .registry import experiments, get

__all__ = ["Experiment", "ExperimentResult", "Verdict", "experiments", "get", "run_all"]


def run_all(size: str, out: str, dask: str | None = None, names: list[str] | None = None) -> list[ExperimentResult]:
    """Run every registered experiment (or ``names``) at ``size`` into ``out`` and write the report."""
    from pathlib import Path

    from .report import write_report
    from .runner import Runner

    exps = experiments()
    results = []
    for name in names or list(exps):
        results.append(exps[name].run(size, out, Runner(dask=dask)))
        write_report(Path(out), list(exps))
    return results

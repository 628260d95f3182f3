"""Command-line entry points of the analysis (registered by :mod:`descentlab.cli`).

``analyze_command(path, plots)`` and ``compare_command(paths, plots)`` print
their results and return an exit status (0 ok, 2 bad input with one message).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _check(path: Path, writes: bool = True) -> str | None:
    """Why ``path`` cannot be analysed (checked before any work), or None; ``writes``: its sidecar will be written."""
    from ..engine.store import StoreError, open_run

    if not path.exists():
        return f"PATH: {path} does not exist"
    try:
        with open_run(path) as f:  # a well-formed run file, not locked by a writer
            if not f.complete:
                return f"PATH: {path} is an incomplete run; finish it with `descentlab run --resume` first"
    except StoreError as exc:
        return f"PATH: {exc}"
    from .io import _is_sidecar, analysis_path

    side = analysis_path(path)
    if writes and side.exists() and not _is_sidecar(side):
        return f"PATH: {side} exists and is not a descentlab analysis file; not replacing it"
    return None


def analyze_command(path: str | Path, plots: str | Path | None = None, **kwargs: Any) -> int:
    """``descentlab analyze RUN.h5 [--plots DIR]``: analyse, write RUN.analysis, print the summary."""
    from . import analyze, summary_text

    path = Path(path)
    err = _check(path)
    if err:
        print(f"descentlab: error: {err}", file=sys.stderr)
        return 2
    ar = analyze(path, plots, progress=None, **kwargs)
    print(summary_text(ar.summary))
    return 0


def compare_command(paths: Sequence[str | Path], plots: str | Path | None = None, **kwargs: Any) -> int:
    """``descentlab compare A.h5 B.h5 ... [--plots DIR]``: a table across runs (+ figures)."""
    from . import compare
    from .convergence import format_table

    paths = [Path(p) for p in paths]
    if not paths:
        print("descentlab: error: PATHS: give at least one run file", file=sys.stderr)
        return 2
    for p in paths:
        err = _check(p, writes=False)
        if err:
            print(f"descentlab: error: {err}", file=sys.stderr)
            return 2
    rows, figs = compare(paths, plots, **kwargs)
    print(format_table(rows))
    for k, v in figs.items():
        print(f"figure {k}: {v}")
    return 0


def info_text(path: str | Path) -> str | None:
    """The analysis summary of a run file for ``descentlab info`` (None if not analysed)."""
    from . import read_summary, summary_text

    s = read_summary(path)
    return None if s is None else summary_text(s)

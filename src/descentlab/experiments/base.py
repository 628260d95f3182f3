"""The experiment protocol: a claim, a grid of runs, measurements, figures, a table and a verdict.

An experiment is a subclass of :class:`Experiment` with a ``name``, the
``claim`` in one sentence and a :meth:`Experiment.execute` that runs its grid
through a :class:`~descentlab.experiments.runner.Runner` at a size (``tiny``
for the tests, ``small``, ``full``), draws figures into its folder and returns
an :class:`ExperimentResult`. Its verdict is computed by a plain function of
the measured numbers (so it can be tested on synthetic numbers); it is never a
constant.

Adding an experiment: one module in this package with a subclass, and one line
in :mod:`descentlab.experiments.registry`; the tests and the report pick it up.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

Size = Literal["tiny", "small", "full"]
SIZES: tuple[str, ...] = ("tiny", "small", "full")
SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"


@dataclass
class Verdict:
    """What the data say about the claim.

    ``outcome`` is ``"supported"``, ``"not supported"`` or ``"depends on X"``;
    ``criterion`` the rule applied (with its threshold); ``statistic`` the name
    of the number it was applied to, ``value`` that number and ``interval`` its
    (low, high) uncertainty interval (Wilson or bootstrap, 95%); ``details``
    what was found, per setting where it matters.
    """

    outcome: str
    criterion: str
    statistic: str
    value: float
    interval: tuple[float, float]
    details: str = ""

    def line(self) -> str:
        lo, hi = self.interval
        return (f"**{self.outcome}** - {self.statistic} = {fmt(self.value)} "
                f"[95%: {fmt(lo)}, {fmt(hi)}]; criterion: {self.criterion}")  # fmt: skip


def fmt(v: Any) -> str:
    """A number for a table or a sentence (3 significant digits)."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.3g}"
    return str(v)


def depends(per_setting: Mapping[str, bool], condition: str) -> str:
    """``supported`` if the claim held in every setting, ``not supported`` in none, else ``depends on ...``."""
    held = [k for k, v in per_setting.items() if v]
    failed = [k for k, v in per_setting.items() if not v]
    if not failed:
        return SUPPORTED
    if not held:
        return NOT_SUPPORTED
    return f"depends on {condition} (holds for {', '.join(held)}; not for {', '.join(failed)})"


@dataclass
class ExperimentResult:
    """Everything an experiment produced: figures, table, verdict and the specs to rerun it.

    ``table`` is a list of rows (dicts with the same keys); ``figures`` paths
    relative to the experiment's folder; ``specs`` name -> sweep spec (dict,
    the input of ``descentlab sweep``); ``measured`` the raw numbers the
    verdict was computed from (JSON-able).
    """

    name: str
    claim: str
    size: str
    verdict: Verdict
    table: list[dict[str, Any]]
    figures: list[str]
    specs: dict[str, dict[str, Any]]
    measured: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    runs: int = 0

    def table_markdown(self) -> str:
        return markdown_table(self.table)

    def table_csv(self) -> str:
        buf = io.StringIO()
        if self.table:
            w = csv.DictWriter(buf, fieldnames=list(self.table[0]))
            w.writeheader()
            w.writerows(self.table)
        return buf.getvalue()

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, default=_json_default)

    @classmethod
    def from_json(cls, text: str) -> ExperimentResult:
        d = json.loads(text)
        v = d.pop("verdict")
        v["interval"] = tuple(v["interval"])
        return cls(verdict=Verdict(**v), **d)


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-able: {type(o).__name__}")


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    keys = list(rows[0])
    def cell(v: Any) -> str:
        return fmt(v).replace("|", "\\|")

    out = ["| " + " | ".join(cell(k) for k in keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        out.append("| " + " | ".join(cell(r.get(k)) for k in keys) + " |")
    return "\n".join(out)


class Experiment:
    """Base class of an experiment (see the module docstring).

    Subclasses set ``name``, ``claim`` and implement :meth:`execute`.
    """

    name: ClassVar[str] = ""
    claim: ClassVar[str] = ""

    def execute(self, size: str, out: Path, runner: Any) -> ExperimentResult:  # pragma: no cover - abstract
        """Run the grids at ``size``, draw figures into ``out``; the verdict is ``verdict_from(measured)``."""
        raise NotImplementedError

    def verdict_from(self, measured: dict[str, Any]) -> Verdict:  # pragma: no cover - abstract
        """The verdict from the measured numbers alone (``ExperimentResult.measured``, JSON-able)."""
        raise NotImplementedError

    def run(self, size: str, out: str | Path, runner: Any | None = None) -> ExperimentResult:
        """Run at ``size`` into the folder ``out/NAME``; writes table.csv, table.md and result.json."""
        from .runner import Runner

        if size not in SIZES:
            raise ValueError(f"size: {size!r} is not one of {', '.join(SIZES)}")
        folder = Path(out) / self.name
        folder.mkdir(parents=True, exist_ok=True)
        runner = runner if runner is not None else Runner()
        runner.reset(folder)
        t0 = time.perf_counter()
        res = self.execute(size, folder, runner)
        res.seconds = time.perf_counter() - t0
        res.runs = runner.runs
        res.specs = dict(runner.specs)
        (folder / "table.csv").write_text(res.table_csv())
        (folder / "table.md").write_text(res.table_markdown() + "\n")
        specs_dir = folder / "specs"
        specs_dir.mkdir(exist_ok=True)
        from ._toml import dumps

        for key, spec in res.specs.items():
            (specs_dir / f"{key}.toml").write_text(dumps(_relative_paths(spec, folder, specs_dir)))
        (folder / "result.json").write_text(res.to_json())
        return res


def _relative_paths(node: Any, inside: Path, start: Path) -> Any:
    """``node`` with every absolute path to a file under ``inside`` written relative to ``start``
    (a spec's files are found relative to the spec file's folder), so a report can be moved."""
    if isinstance(node, dict):
        return {k: _relative_paths(v, inside, start) for k, v in node.items()}
    if isinstance(node, list):
        return [_relative_paths(v, inside, start) for v in node]
    if isinstance(node, str) and os.path.isabs(node):
        path = Path(node).resolve()
        if path.is_relative_to(inside.resolve()):
            return os.path.relpath(path, start.resolve())
    return node

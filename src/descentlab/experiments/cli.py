"""``descentlab experiment list | run NAME | all``: the experiments' command line."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

experiment_app = typer.Typer(help="Named experiments: each claim, its runs, figures and a verdict from the data.",
                             no_args_is_help=True)  # fmt: skip


class SizeOption(StrEnum):
    tiny = "tiny"
    small = "small"
    full = "full"


def _bad(msg: str) -> Exception:
    from ..engine.spec import SpecError

    return SpecError(msg)


@experiment_app.command("list")
def list_command() -> None:
    """The experiments and their claims."""
    from .registry import experiments

    for name, exp in experiments().items():
        typer.echo(f"{name:<22} {exp.claim}")


def _run(names: list[str], size: SizeOption, out: Path, dask: str | None) -> None:
    from .registry import experiments
    from .report import write_report
    from .runner import Runner

    exps = experiments()
    for n in names:
        if n not in exps:
            raise _bad(f"NAME: no experiment {n!r} (known: {', '.join(exps)})")
    if out.exists() and not out.is_dir():
        raise _bad(f"out: {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for n in names:
        res = exps[n].run(size.value, out, Runner(dask=dask))
        typer.echo(f"{n}: {res.verdict.outcome} - {res.verdict.statistic} = {res.verdict.value:.3g} "
                   f"[{res.verdict.interval[0]:.3g}, {res.verdict.interval[1]:.3g}] ({res.seconds:.1f} s)")  # fmt: skip
    md, ht = write_report(out, list(exps))
    typer.echo(f"report: {md} and {ht} ({time.perf_counter() - t0:.1f} s)")


@experiment_app.command("run")
def run_command(
    name: Annotated[str, typer.Argument(help="experiment name (see `descentlab experiment list`)")],
    size: Annotated[SizeOption, typer.Option("--size", help="grid size (tiny: for tests)")] = SizeOption.small,
    out: Annotated[Path, typer.Option("-o", "--out", help="output directory")] = Path("experiments-out"),
    dask: Annotated[str | None, typer.Option("--dask", help="run the grids on Dask: local or tcp://HOST:PORT")] = None,
) -> None:
    """Run one experiment into OUT/NAME and (re)write OUT/report.md and report.html."""
    _run([name], size, out, dask)


@experiment_app.command("all")
def all_command(
    out: Annotated[Path, typer.Option("-o", "--out", help="output directory")],
    size: Annotated[SizeOption, typer.Option("--size", help="grid size (tiny: for tests)")] = SizeOption.small,
    dask: Annotated[str | None, typer.Option("--dask", help="run the grids on Dask: local or tcp://HOST:PORT")] = None,
) -> None:
    """Run every experiment into OUT and write OUT/report.md and report.html."""
    from .registry import experiments

    _run(list(experiments()), size, out, dask)

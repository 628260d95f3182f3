"""The ``descentlab`` command line (typer).

Exit status: 0 ok, 2 bad input (one line naming the field, no traceback,
nothing written), 1 internal error.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="descentlab",
    help="Many particles through loss landscapes under every common optimizer.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


class UserError(ValueError):
    """Bad input given on the command line: exit status 2."""


class Compression(StrEnum):
    gzip = "gzip"
    lzf = "lzf"


def _set_threads(threads: int | None) -> None:
    if threads is None:
        return
    from .kernels.threads import max_threads, set_threads

    if not 1 <= threads <= max_threads():
        raise UserError(f"--threads: expected 1..{max_threads()}, got {threads}")
    set_threads(threads)


@app.command()
def run(
    spec: Annotated[Path, typer.Argument(help="run spec (TOML)")],
    out: Annotated[Path, typer.Option("-o", "--out", help="output HDF5 file")],
    resume: Annotated[bool, typer.Option("--resume", help="continue OUT's partial file from its checkpoint")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing OUT")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or summary")] = False,
    chunk_steps: Annotated[int | None, typer.Option("--chunk-steps", help="steps per chunk (same results)")] = None,
    compression: Annotated[Compression | None, typer.Option("--compression", help="compress the trajectory")] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="kernel threads (results unchanged)")] = None,
    checkpoint_every: Annotated[
        float, typer.Option("--checkpoint-every", help="seconds between checkpoints (0: every chunk)")
    ] = 30.0,
    shards: Annotated[int | None, typer.Option("--shards", help="split the particles into K files + an index")] = None,
    dask: Annotated[str | None, typer.Option("--dask", help="run the shards on Dask: local or tcp://HOST:PORT")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="workers of --dask local")] = None,
    no_resource_check: Annotated[
        bool, typer.Option("--no-resource-check", help="skip the up-front memory and free-space checks")
    ] = False,
) -> None:
    """Run one spec into an HDF5 file (atomic; resumable; one writer per output)."""
    from .engine.spec import parse_spec
    from .engine.store import open_run, write_run

    rs = parse_spec(spec, memory_check=not no_resource_check)
    if chunk_steps is not None and chunk_steps < 1:
        raise UserError(f"--chunk-steps: must be >= 1, got {chunk_steps}")
    _set_threads(threads)
    if not checkpoint_every >= 0:
        raise UserError(f"--checkpoint-every: must be >= 0 seconds, got {checkpoint_every}")
    if shards is not None or dask is not None:  # issue 10: sharded runs
        if compression is not None:
            raise UserError("--compression: not supported with --shards / --dask")
        path = _run_sharded(spec, out, shards or 1, dask, workers, threads, resume, overwrite, quiet, chunk_steps,
                            checkpoint_every)  # fmt: skip
    else:
        path = write_run(
            rs, out, resume=resume, overwrite=overwrite, chunk_steps=chunk_steps,
            compression=compression.value if compression else None, progress=False if quiet else None,
            checkpoint_every=checkpoint_every, check_resources=not no_resource_check,
        )  # fmt: skip
    if not quiet:
        with open_run(path) as f:
            counts = f.status_counts() or {}
            wall = f.attrs.get("wall_time")
        summary = ", ".join(f"{k}: {v}" for k, v in counts.items() if v)
        typer.echo(f"{path}: {rs.particles} particles x {rs.steps} steps ({summary})"
                   + (f" in {wall:.3g} s" if wall is not None else ""))  # fmt: skip


# ----------------------------------------------------------------------------- sweeps and shards (issue 10)


def _run_sharded(spec: Path, out: Path, shards: int, dask: str | None, workers: int | None, threads: int | None,
                 resume: bool, overwrite: bool, quiet: bool, chunk_steps: int | None,
                 checkpoint_every: float) -> Path:  # fmt: skip
    from .sweeps import run_sharded
    from .sweeps.execute import make_executor

    if shards < 1:
        raise UserError(f"--shards: must be >= 1, got {shards}")
    if workers is not None and (dask != "local" or workers < 1):
        raise UserError("--workers: only with --dask local, and >= 1")
    ex = make_executor(dask, workers=workers, threads=threads)
    try:
        return run_sharded(spec, out, shards, executor=ex, resume=resume, overwrite=overwrite,
                           progress=False if quiet else None, chunk_steps=chunk_steps,
                           checkpoint_every=checkpoint_every)  # fmt: skip
    finally:
        ex.close()


def _analyze_sweep(directory: Path, plots: Path | None, dask: str | None) -> None:
    from .sweeps.analysis import analyze_sweep, format_rows
    from .sweeps.execute import make_executor

    ex = make_executor(dask)
    try:
        res = analyze_sweep(directory, plots, executor=ex)
    finally:
        ex.close()
    typer.echo(format_rows(res["rows"]))
    if res["missing"]:
        typer.echo(f"not analysed (incomplete): points {res['missing']}")
    for k, v in res["figures"].items():
        typer.echo(f"figure {k}: {v}")


def _sweep_point_files(paths: list[Path]) -> list[Path]:
    from .sweeps.analysis import complete_points, load_plan

    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            plan = load_plan(p)
            out.extend(p / plan.points[i].file_name for i in complete_points(p, plan))
        else:
            out.append(p)
    return out


@app.command()
def sweep(
    spec: Annotated[Path, typer.Argument(help="run spec with a [sweep] table (TOML)")],
    out: Annotated[Path, typer.Option("-o", "--out", help="output directory (one run file per point + sweep.h5)")],
    resume: Annotated[bool, typer.Option("--resume", help="continue the sweep in OUT")] = False,
    dask: Annotated[str | None, typer.Option("--dask", help="run on Dask: local or tcp://HOST:PORT")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="workers of --dask local")] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="kernel threads per point")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or summary")] = False,
    chunk_steps: Annotated[int | None, typer.Option("--chunk-steps", help="steps per chunk (same results)")] = None,
    checkpoint_every: Annotated[
        float, typer.Option("--checkpoint-every", help="seconds between checkpoints (0: every chunk)")
    ] = 30.0,
) -> None:
    """Run every point of a sweep: one run file each and the index OUT/sweep.h5 (resumable)."""
    from .sweeps import expand, run_sweep
    from .sweeps.api import check_out
    from .sweeps.execute import make_executor

    plan = expand(spec)  # every point validated before anything is written
    check_out(plan, out, resume)
    if chunk_steps is not None and chunk_steps < 1:
        raise UserError(f"--chunk-steps: must be >= 1, got {chunk_steps}")
    if threads is not None and dask is None:
        _set_threads(threads)
    if workers is not None and (dask != "local" or workers < 1):
        raise UserError("--workers: only with --dask local, and >= 1")
    if not checkpoint_every >= 0:
        raise UserError(f"--checkpoint-every: must be >= 0 seconds, got {checkpoint_every}")
    ex = make_executor(dask, workers=workers, threads=threads)
    try:
        index = run_sweep(plan, out, resume=resume, executor=ex, progress=False if quiet else None,
                          chunk_steps=chunk_steps, echo=None if quiet else typer.echo,
                          checkpoint_every=checkpoint_every)  # fmt: skip
    finally:
        ex.close()
    if not quiet:
        typer.echo(f"{index}: {len(plan)} points")


@app.command()
def info(path: Annotated[Path, typer.Argument(help="run file (HDF5), or a sweep directory")]) -> None:
    """What is in a run file: spec, sizes, status counts, whether complete."""
    from .engine.store import StoreError, open_run

    if not path.exists():
        raise UserError(f"PATH: {path} does not exist")
    from .sweeps.index import describe_sweep  # issue 10: a sweep directory or its sweep.h5

    text = describe_sweep(path)
    if text is not None:
        typer.echo(text)
        return
    try:
        f = open_run(path, locking=False)  # a run in progress can be looked at
    except StoreError as exc:
        raise UserError(f"PATH: {exc}") from None
    with f:
        try:
            text = f.describe()
        except (OSError, KeyError, ValueError) as exc:  # caught mid-write by the run that writes it
            raise UserError(f"PATH: cannot read {path} just now ({type(exc).__name__}: {exc}); try again") from None
        typer.echo(text)
    from .analysis.cli import info_text

    text = info_text(path)
    if text:
        typer.echo(text)


def parse_targets(text: str | None) -> tuple[float, ...] | None:
    """``"1e-1,1e-3"`` -> (0.1, 0.001); None -> None. Raises the CLI's one-line error on bad input."""
    if text is None:
        return None
    try:
        vals = tuple(float(v) for v in text.replace(";", ",").split(",") if v.strip())
    except ValueError:
        vals = ()
    if not vals or any(not v > 0 for v in vals):
        raise UserError(f"--targets: give positive numbers separated by commas, got {text!r}")
    return vals


@app.command()
def analyze(
    path: Annotated[Path, typer.Argument(help="run file (HDF5), or a sweep directory")],
    plots: Annotated[Path | None, typer.Option("--plots", help="directory for the figures (PNG)")] = None,
    dask: Annotated[str | None, typer.Option("--dask", help="sweeps: analyse on Dask (local, tcp://...)")] = None,
    include_running: Annotated[bool | None, typer.Option(
        "--include-running/--no-include-running",
        help="count every particle that ran all its steps as settled (default: only for noisy gradients)")] = None,
    rel_tol: Annotated[float | None, typer.Option("--rel-tol", help="clustering tolerance / landscape scale")] = None,
    move_tol: Annotated[float | None, typer.Option(
        "--move-tol", help="largest movement over the last 10% of steps of a settled particle")] = None,
    eig_tol: Annotated[float | None, typer.Option("--eig-tol", help="relative eigenvalue tolerance")] = None,
    targets: Annotated[str | None, typer.Option(
        "--targets", help="precisions of the targets f - f_ref <= delta, e.g. 1e-1,1e-3,1e-6")] = None,
    reference: Annotated[float | None, typer.Option(
        "--reference", help="f_ref of the targets (default: known optimum, else lowest end-point loss)")] = None,
) -> None:
    """Analyse a run file: attractors, basins, Hessians, convergence; writes RUN.analysis (+ figures).

    A sweep directory: every point is analysed, OUT/sweep.h5 gains basin fractions, and figures go to
    --plots (default DIR/figures)."""
    from .analysis.cli import analyze_command

    if path.is_dir() or (path.name == "sweep.h5" and path.exists()):  # issue 10: a sweep
        _analyze_sweep(path if path.is_dir() else path.parent, plots, dask)
        return
    if dask is not None:
        raise UserError("--dask: only for a sweep directory")
    knobs = {"include_running": include_running, "rel_tol": rel_tol, "move_tol": move_tol, "eig_tol": eig_tol,
             "targets": parse_targets(targets), "reference": reference}  # fmt: skip
    rc = analyze_command(path, plots, **{k: v for k, v in knobs.items() if v is not None})
    if rc:
        raise typer.Exit(rc)


@app.command()
def compare(
    paths: Annotated[list[Path], typer.Argument(help="run files (HDF5)")],
    plots: Annotated[Path | None, typer.Option("--plots", help="directory for the figures (PNG)")] = None,
    targets: Annotated[str | None, typer.Option(
        "--targets", help="precisions of the targets f - f_ref <= delta, e.g. 1e-1,1e-3,1e-6")] = None,
    reference: Annotated[float | None, typer.Option(
        "--reference", help="f_ref shared by the runs (default: known optimum, else lowest loss of all runs)")] = None,
) -> None:
    """Compare run files (e.g. one per optimizer; a sweep directory stands for its points' files).

    Every run is measured against one reference loss, so the table tells runs apart by how far they got."""
    from .analysis.cli import compare_command

    if any(p.is_dir() for p in paths):  # issue 10: sweep directories
        paths = _sweep_point_files(paths)
    knobs = {"targets": parse_targets(targets), "reference": reference}
    rc = compare_command(paths, plots, **{k: v for k, v in knobs.items() if v is not None})
    if rc:
        raise typer.Exit(rc)


def _fmt(v: Any) -> str:
    if isinstance(v, tuple):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, bool):
        return str(v).lower()
    return repr(v)


@app.command()
def landscapes() -> None:
    """The landscape catalogue: name, dimension, parameters with defaults."""
    from .landscapes import LANDSCAPES

    for name in sorted(LANDSCAPES):
        land = LANDSCAPES[name]
        dim = f"D={land.dim}" if land.dim is not None else f"any D (default {land.default_dim})"
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in land.params.items()) or "no parameters"
        typer.echo(f"{name:<18} {dim:<20} {params}")
        typer.echo(f"{'':<18} {land.description}; init box {list(land.init_box)}")
    from .data.datasets import DATASETS
    from .models.init import MODEL_INIT_SCHEMES
    from .problems.finite_sum import MODEL_LANDSCAPES

    typer.echo("\nmodels trained on a [data] set (finite sums; [batch] size, shuffle, drop_last, schedule):")
    for name, kind in MODEL_LANDSCAPES.items():
        keys = "hidden, activation, loss, batch_norm" if kind == "mlp" else "no parameters"
        typer.echo(f"{name:<20} {keys}")
    typer.echo("\ndata sets ([data] name = ...; all take test_fraction, seed, standardize):")
    for name, info in DATASETS.items():
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in info.defaults.items()) or "no parameters"
        typer.echo(f"{name:<10} {params}")
        typer.echo(f"{'':<10} {info.description}")
    typer.echo("\nmodel initializations ([init] scheme = ...; bias, scale_factor):")
    for name, sinfo in MODEL_INIT_SCHEMES.items():
        typer.echo(f"{name:<16} {sinfo.description}")


@app.command()
def optimizers() -> None:
    """The optimizer catalogue: name, hyperparameters with defaults, state."""
    from .optimizers import OPTIMIZERS

    for name in sorted(OPTIMIZERS):
        opt = OPTIMIZERS[name]
        hyper = ", ".join(f"{k}={_fmt(v)}" for k, v in opt.hyper.items())
        typer.echo(f"{name:<12} {hyper}")
        typer.echo(f"{'':<12} {opt.description}; state {list(opt.state) or '-'}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("-o", "--out", help="output directory")] = Path("results/demo"),
    particles: Annotated[int, typer.Option("--particles", help="particles per optimizer")] = 10_000,
    steps: Annotated[int, typer.Option("--steps", help="steps per run")] = 500,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Built-in demo: particles on Himmelblau under three optimizers; files + a figure."""
    from .demo import run_demo

    if particles < 1:
        raise UserError(f"--particles: must be >= 1, got {particles}")
    if steps < 10:
        raise UserError(f"--steps: must be >= 10, got {steps}")
    run_demo(out, particles=particles, steps=steps, echo=(lambda s: None) if quiet else typer.echo)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(ctx: typer.Context) -> None:
    """The benchmark suite: descentlab vs NumPy / JAX / PyTorch (options: descentlab bench --help-bench).

    A thin wrapper around ``benchmarks/run.py`` of a checkout of the repository (the suite is
    not part of the installed package): found next to the package's source tree, or in the
    folder named by ``DESCENTLAB_BENCHMARKS``.
    """
    import runpy

    script = benchmarks_dir() / "run.py"
    args = ["--help" if a == "--help-bench" else a for a in ctx.args]
    rc = runpy.run_path(str(script))["main"](args)
    if rc:
        raise typer.Exit(rc)


def benchmarks_dir() -> Path:
    """The repository's ``benchmarks/`` folder (:class:`UserError` when there is none)."""
    env = os.environ.get("DESCENTLAB_BENCHMARKS")
    candidates = [Path(env)] if env else [Path(__file__).resolve().parents[2] / "benchmarks", Path.cwd() / "benchmarks"]
    for folder in candidates:
        if (folder / "run.py").is_file() and (folder / "suite.py").is_file():
            return folder
    raise UserError("bench: the benchmark suite lives in the repository's benchmarks/ folder, which was not found "
                    f"(looked in {', '.join(map(str, candidates))}); clone the repository and run it there, "
                    "or set DESCENTLAB_BENCHMARKS")  # fmt: skip


def _add_experiments() -> None:
    from .experiments.cli import experiment_app

    app.add_typer(experiment_app, name="experiment")


_add_experiments()


def _user_errors() -> tuple[type[BaseException], ...]:
    from .engine.spec import SpecError
    from .engine.store import StoreError
    from .kernels.cuda import CudaUnavailable

    return (UserError, SpecError, StoreError, CudaUnavailable)


def _messages_to_stderr() -> None:
    """Show the package's INFO messages (e.g. ``compiling ... - first use``) on stderr."""
    logger = logging.getLogger("descentlab")
    if not any(getattr(h, "descentlab_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("descentlab: %(message)s"))
        handler.descentlab_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns the exit status (0 ok, 2 bad input, 1 internal error)."""
    _messages_to_stderr()
    try:
        rv = app(args=argv, prog_name="descentlab", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 1
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as exc:
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # usage errors (click/typer): status 2
            exc.show()
            return int(exc.exit_code)
        if isinstance(exc, _user_errors()):
            msg = " ".join(str(exc).split())
            typer.echo(f"descentlab: error: {msg}", err=True)
            return 2
        traceback.print_exc()
        typer.echo(f"descentlab: internal error: {type(exc).__name__}: {exc}", err=True)
        return 1
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())

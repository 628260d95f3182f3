"""The analysis pipeline: from run data to an :class:`AnalysisResult`; analyse a file; compare runs."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import attractors as _att
from . import convergence as _conv
from . import critical as _crit
from .critical import LandscapeMath, ModelMath
from .io import ANALYSIS_VERSION, _write, read_run, read_summary, run_fingerprint
from .result import AnalysisResult, RunData
from .summary import _jsonable


def _landscape(spec: Mapping[str, Any]) -> LandscapeMath:
    from ..engine.spec import SpecError, parse_spec
    from ..engine.store import StoreError
    from ..problems.finite_sum import MODEL_LANDSCAPES

    try:
        rs = parse_spec(spec, memory_check=False)
        if rs.finite_sum is not None:
            return ModelMath(rs.landscape, rs.landscape_params, rs.dim, rs.finite_sum)
        return LandscapeMath(rs.landscape, rs.landscape_params, rs.dim)
    except SpecError as exc:
        land = spec.get("landscape", {}) if isinstance(spec, Mapping) else {}
        # the landscape itself (a formula, a model and its data) cannot be rebuilt: refuse, naming why
        if str(exc).startswith(("landscape", "data")) or "formula" in land or land.get("name") in MODEL_LANDSCAPES:
            raise StoreError(f"PATH: the run's spec cannot be rebuilt for the analysis: {exc}") from None
        reason: Exception = exc
    except (KeyError, TypeError, ValueError) as exc:  # a stored spec this version reads differently
        reason = exc
    # the rest of the spec (optimizer, init, ...) does not parse any more, the landscape does: say why
    logging.getLogger("descentlab").warning(
        "the run's stored spec does not parse (%s: %s); analysing its landscape from the [landscape] table alone",
        type(reason).__name__, reason,
    )  # fmt: skip
    return _fallback_landscape(spec)


def _fallback_landscape(spec: Mapping[str, Any]) -> LandscapeMath:
    """An analytic landscape from the stored spec alone (when the rest of it does not parse any more)."""
    from ..landscapes.registry import get_landscape

    ls = dict(spec["landscape"])
    land = get_landscape(ls.pop("name"))
    dim = land.resolve_dim(ls.pop("dim", None))
    return LandscapeMath(land, land.resolve_params({k: v for k, v in ls.items() if k in land.params}), dim)


def _noisy(spec: Mapping[str, Any]) -> bool:
    """Whether the gradients are noisy: the optimizer injects noise, or minibatches smaller than the
    training set (then particles never 'converge' and jitter around where they settled)."""
    opt = spec.get("optimizer", {})
    phases = opt.get("phases", [opt]) if isinstance(opt, Mapping) else list(opt)
    if any(float(p.get("noise_std", 0.0) or 0.0) > 0 for p in phases if isinstance(p, Mapping)):
        return True
    batch, data = spec.get("batch") or {}, spec.get("data") or {}
    size, samples = batch.get("size"), data.get("samples")
    if isinstance(size, int) and isinstance(samples, int):
        return size < int(samples * (1.0 - float(data.get("test_fraction", 0.0) or 0.0)))
    return bool(batch.get("schedule"))


def _init_box(spec: Mapping[str, Any], lm: LandscapeMath, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    init = spec.get("init", {})
    lo, hi = lm.landscape.init_box
    low = np.broadcast_to(np.asarray(init.get("low", lo), dtype=float), (lm.dim,)).copy()
    high = np.broadcast_to(np.asarray(init.get("high", hi), dtype=float), (lm.dim,)).copy()
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))) and x.size:
        low, high = np.nanmin(x, axis=0), np.nanmax(x, axis=0)
    return low, high


def analyze_arrays(
    data: RunData,
    *,
    rel_tol: float = _att.REL_TOL,
    eig_tol: float = _crit.EIG_TOL,
    targets: Sequence[float] = _conv.TARGETS,
    include_running: bool | None = None,
    census: bool | None = None,
    label: str = "",
    move_tol: float | None = None,
    reference: float | None = None,
    views: bool | None = None,
    progress: bool | None = False,
) -> AnalysisResult:
    """The whole analysis on in-memory arrays (nothing is written): every registered analysis
    (:data:`descentlab.analysis.registry.ANALYSES`) in order.

    ``rel_tol``: clustering tolerance relative to the landscape's scale. ``eig_tol``: relative
    eigenvalue tolerance of the classification. ``targets``: precisions ``delta`` of the
    convergence targets ``f - f_ref <= delta``. ``reference``: ``f_ref`` (default: the
    landscape's known optimum, else the lowest loss reached by a particle that neither
    diverged nor left the bound; :func:`compare` shares one among the runs it compares).
    ``include_running``: count every particle that ran all its steps as settled (default: only
    for noisy gradients - Langevin noise, minibatches); otherwise the rule of
    :mod:`descentlab.analysis.attractors` applies, with ``move_tol`` (default the clustering
    tolerance) as the largest recent movement of a settled particle. ``census``: the
    critical-point census (default for D >= 3). ``views``: the views for D > 2 (PCA of the
    trajectories, loss plane, sharpness along the trajectories; default for D > 2).
    ``progress``: a progress bar over the analyses (None: on a terminal only).
    """
    from . import layers as _layers  # noqa: F401  (registers the per-layer statistics)
    from . import steps as _steps  # noqa: F401  (registers the core analyses)
    from . import views as _views  # noqa: F401  (registers the views)
    from .registry import ANALYSES, Context, Options

    spec = data.spec
    lm = _landscape(spec)
    opts = Options(
        rel_tol=float(rel_tol), eig_tol=float(eig_tol), targets=tuple(float(t) for t in targets),
        include_running=_noisy(spec) if include_running is None else bool(include_running), census=census,
        label=label, move_tol=move_tol, reference=reference, views=views,
    )  # fmt: skip
    ctx = Context(data=data, lm=lm, options=opts, status=np.asarray(data.status), final_x=np.asarray(data.final_x),
                  final_loss=np.asarray(data.final_loss, dtype=np.float64))  # fmt: skip
    bar = _progress_bar(len(ANALYSES), progress, "analysis")
    try:
        for an in ANALYSES.values():
            bar.set_postfix_str(an.name)
            out = an.compute(ctx)
            if out:
                ctx.results.update(out)
            bar.update(1)
    finally:
        bar.close()
    summary: dict[str, Any] = {
        "analysis_version": ANALYSIS_VERSION,
        "label": label,
        "landscape": lm.landscape.name,
        "dim": lm.dim,
        "optimizer": optimizer_label(spec),
        "particles": ctx.n,
    }
    for an in ANALYSES.values():
        if an.summarize is not None:
            summary.update(an.summarize(ctx))
    return AnalysisResult(summary=_jsonable(summary), results=ctx.results)


def _progress_bar(total: int, show: bool | None, desc: str) -> Any:
    import sys

    from tqdm.auto import tqdm

    disable = (not sys.stderr.isatty()) if show is None else not show
    return tqdm(total=total, desc=desc, disable=disable, leave=True, mininterval=1.0)


def _run_data(result: Any) -> RunData:
    return RunData(
        spec=result.spec, init_x=result.init_x, final_x=result.final_x, final_loss=result.final_loss,
        status=result.status, stop_step=result.stop_step, record_steps=result.record_steps,
        trajectory_loss=result.trajectory_loss, trajectory_x=result.trajectory_x,
        grad_norm=getattr(result, "grad_norm", None),
    )  # fmt: skip


def analyze_result(result: Any, plots_dir: str | Path | None = None, **kwargs: Any) -> AnalysisResult:
    """:func:`analyze_arrays` on an in-memory :class:`descentlab.Result` (and its figures)."""
    data = _run_data(result)
    ar = analyze_arrays(data, **kwargs)
    if plots_dir is not None:
        from .figures import make_figures

        ar.figures = make_figures(ar, data, plots_dir, kwargs.get("label") or "run")
    return ar


def analyze(path: str | Path, plots_dir: str | Path | None = None, *, write: bool = True,
            **kwargs: Any) -> AnalysisResult:  # fmt: skip
    """Analyse the run file ``path`` (opened read-only): write the sidecar
    :func:`~descentlab.analysis.analysis_path` (unless ``write=False``) and, with
    ``plots_dir``, the figures; returns the :class:`AnalysisResult`.

    Keyword arguments go to :func:`analyze_arrays` (``rel_tol``, ``eig_tol``, ``targets``,
    ``reference``, ``include_running``, ``move_tol``, ``census``, ``views``, ``progress``).
    """
    path = Path(path)
    kwargs.setdefault("label", path.stem)
    data, f = read_run(path)
    try:
        fingerprint = run_fingerprint(f.attrs)
        ar = analyze_arrays(data, **kwargs)
        ar.summary["path"] = str(path)
        if plots_dir is not None:
            from .figures import make_figures

            ar.figures = make_figures(ar, data, plots_dir, path.stem)
            ar.summary["figures"] = {k: str(v) for k, v in ar.figures.items()}
    finally:
        f.close()
    if write:
        _write(path, ar, fingerprint)
    return ar


def optimizer_label(spec: Mapping[str, Any]) -> str:
    """The optimizer with the hyperparameters that tell it apart: its learning rate and every
    hyperparameter that differs from its default (``"sgd lr=0.002 momentum=0.9"``); phases of a
    switch joined by ``->``; a minibatch size as ``batch=B``."""
    from ..optimizers.registry import get_optimizer

    opt = spec.get("optimizer", {})
    phases = opt.get("phases", [opt]) if isinstance(opt, Mapping) else list(opt)
    parts = []
    for ph in phases:
        if not isinstance(ph, Mapping):
            continue
        name = str(ph.get("name", "?"))
        try:
            defaults = get_optimizer(name).hyper
        except Exception:
            defaults = {}
        items = [f"lr={ph['lr']:g}"] if isinstance(ph.get("lr"), int | float) else []
        for k, v in ph.items():
            if k in ("name", "lr", "steps", "start", "until") or k not in defaults:
                continue
            d = defaults[k]
            if (list(v) if isinstance(v, list | tuple) else v) != (list(d) if isinstance(d, list | tuple) else d):
                items.append(f"{k}={_fmt(v)}")
        parts.append(" ".join([name, *items]))
    text = " -> ".join(parts) or "?"
    size = (spec.get("batch") or {}).get("size")
    return f"{text} batch={size}" if size else text


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list | tuple):
        return "(" + ",".join(_fmt(x) for x in v) + ")"
    return str(v)


def compare(paths: Sequence[str | Path], plots_dir: str | Path | None = None, analyse_missing: bool = True,
            reference: float | None = None,
            targets: Sequence[float] = _conv.TARGETS) -> tuple[list[dict[str, Any]], dict[str, Path]]:  # fmt: skip
    """Comparison table across run files and, with ``plots_dir``, overlaid ECDF and loss-band
    figures. Returns (rows, figures).

    The convergence of every run is measured against one reference ``f_ref`` shared by all
    runs (``reference``, else the landscapes' known optimum when every run has one and they
    agree, else the lowest loss any particle of any run reached without diverging or leaving
    the bound), so runs with different final losses get different success rates; particles
    that diverged or left the bound are never successes. Runs not analysed yet are analysed
    in memory (nothing is written into or beside them).
    """
    from . import plots
    from .steps import best_loss, convergence, convergence_summary

    paths = [Path(p) for p in paths]
    loaded = []
    for p in paths:
        s = read_summary(p)
        if s is None or (analyse_missing and s.get("analysis_version") != ANALYSIS_VERSION):
            s = analyze(p, write=False, targets=targets).summary  # compare writes nothing
        loaded.append(dict(s))
    kinds = {s.get("reference_kind") for s in loaded}
    refs = {round(float(s["f_opt"]), 12) for s in loaded if s.get("f_opt") is not None}
    if reference is not None:
        f_ref, kind = float(reference), "given"
    elif kinds == {"known optimum"} and len(refs) == 1:
        f_ref, kind = float(loaded[0]["f_opt"]), "known optimum"
    else:
        bests = [s.get("best_final_loss") for s in loaded]
        fin = [float(b) for b in bests if b is not None and np.isfinite(b)]
        f_ref, kind = (min(fin) if fin else float("nan")), "lowest end-point loss of the compared runs"
    summaries, curves, bands = [], [], []
    for p, s in zip(paths, loaded, strict=True):
        data, f = read_run(p)
        try:
            status, final_loss = np.asarray(data.status), np.asarray(data.final_loss, dtype=np.float64)
            conv = convergence(data, status, final_loss, f_ref, kind, targets)
        finally:
            f.close()
        s.update(convergence_summary(conv, status, final_loss))
        s["best_final_loss"] = best_loss(status, final_loss)
        s["global_fraction"] = _global_fraction(s, f_ref)
        s["label"] = p.stem
        summaries.append(s)
        lab = f"{p.stem}: {s.get('optimizer')}"
        curves.append((lab, conv["ecdf_budget"], conv["ecdf"]))
        bands.append((lab, conv["record_step"], conv["loss_quantile"], list(conv["quantile_level"])))
    rows = _conv.comparison_table(summaries)
    figs: dict[str, Path] = {}
    if plots_dir is not None:
        out = Path(plots_dir)
        every = sorted({int(s.get("record_every") or 0) for s in summaries})
        note = _ref_note(f_ref, kind, targets, every)
        fig = plots.ecdf(curves, title="steps-to-target ECDF", note=note)
        figs["ecdf"] = plots.save(fig, out / "compare_ecdf.png")
        fig = plots.loss_bands(bands, title="loss: median and quantile bands")
        figs["loss_bands"] = plots.save(fig, out / "compare_loss_bands.png")
    return rows, figs


def _global_fraction(summary: Mapping[str, Any], f_ref: float) -> float | None:
    """Fraction of particles at attractors whose loss is within tolerance of ``f_ref`` (the shared
    reference of a comparison), from a summary's attractor rows."""
    n = int(summary.get("particles") or 0)
    if not n or not np.isfinite(f_ref):
        return None
    tol = 1e-6 * (1.0 + abs(f_ref))
    at = [r["count"] for r in summary.get("attractors", []) if r.get("loss") is not None
          and r["loss"] - f_ref <= max(tol, 1e-3 * abs(r["loss"]) + tol)]  # fmt: skip
    return float(sum(at) / n)


def _ref_note(f_ref: float, kind: str, targets: Sequence[float], record_every: Sequence[int]) -> str:
    t = ", ".join(f"{x:.0e}" for x in targets)
    rec = "/".join(str(r) for r in record_every if r)
    return f"targets f - f_ref <= {{{t}}}\nf_ref = {f_ref:.6g} ({kind}); steps resolved to record_every = {rec}"

"""minimum-ratio: in high dimension most critical points are saddles, and the low ones are minima.

Critical points of seeded random landscapes (random Fourier features plus a
weak bowl) in D = 2 .. 32 are found with Newton's method (which converges to
critical points of any index) from random starts; only points whose gradient
norm is below a tolerance count. At each: the Hessian eigenvalues, the
"minimum ratio" (share of positive eigenvalues) and whether it is a true
minimum (all positive). Dauphin et al. (2014): the index falls with the loss,
and true minima become a vanishing share of critical points as D grows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._plot import figure, save
from .base import Experiment, ExperimentResult, Verdict, depends
from .stats import spearman, wilson

SIZES = {"tiny": (48, (2, 6)), "small": (400, (2, 3, 4, 6, 8)), "full": (3000, (2, 3, 4, 6, 8, 10, 12))}
GRAD_TOL = 1e-8
EIG_TOL = 1e-8


class MinimumRatio(Experiment):
    name = "minimum-ratio"
    claim = ("As the dimension grows, true minima become a vanishing share of the critical points, and the share "
             "of positive Hessian eigenvalues rises as the loss falls (low critical points are nearly minima).")

    def verdict_from(self, m: dict[str, Any]) -> Verdict:
        """(a) the Wilson interval of the share of minima at the smallest D lies above that at the largest D
        (of the dimensions with >= 10 critical points);
        (b) at every D >= 4 with >= 10 critical points, the bootstrap upper bound of Spearman's rho between loss
        and minimum ratio is < 0."""
        dims = sorted((d for d, r in m["dims"].items() if r["critical"] >= 10), key=int) or sorted(m["dims"], key=int)
        lo_d, hi_d = m["dims"][dims[0]], m["dims"][dims[-1]]
        w_small = wilson(lo_d["minima"], lo_d["critical"])
        w_large = wilson(hi_d["minima"], hi_d["critical"])
        vanishing = bool(w_small[0] > w_large[1])
        per = {"minima vanish with D": vanishing}
        for d in dims:
            r = m["dims"][d]
            if int(d) >= 4 and r["critical"] >= 10:
                per[f"index falls with loss (D={d})"] = bool(r["rho_high"] < 0)
        return Verdict(
            outcome=depends(per, "the part of the claim"),
            criterion=("Wilson 95% interval of the share of true minima among critical points at the smallest D lies "
                       "above the one at the largest D (dimensions with >= 10 critical points); at each D >= 4 the "
                       "bootstrap upper bound of Spearman's rho "
                       f"(loss, share of positive eigenvalues) < 0; critical: |grad| < {GRAD_TOL:g}"),
            statistic=f"share of minima among critical points at D = {dims[-1]}",
            value=hi_d["minima"] / hi_d["critical"] if hi_d["critical"] else float("nan"), interval=w_large,
            details="; ".join(f"D = {d}: {r['minima']}/{r['critical']} minima, rho(loss, ratio) {r['rho']:.2f} "
                              f"[{r['rho_low']:.2f}, {r['rho_high']:.2f}]" for d, r in
                              sorted(m["dims"].items(), key=lambda kv: int(kv[0]))),
        )  # fmt: skip

    def execute(self, size: str, out: Path, runner: Any) -> ExperimentResult:
        from ._measure import problem

        n, dims = SIZES[size]
        land = {"name": "random", "features": 64, "seed": 3, "c": 0.1, "length_scale": 1.0}
        base = {"run": {"particles": n, "steps": 100, "record_every": 100, "seed": 8},
                "landscape": {**land, "dim": dims[0]}, "optimizer": {"name": "newton", "lr": 1.0},
                "init": {"scheme": "uniform", "low": -3.0, "high": 3.0},
                "stop": {"grad_tol": GRAD_TOL, "patience": 1, "bound": 1e3}}  # fmt: skip
        results = runner.grid("newton", base, [{"landscape.dim": d} for d in dims])
        measured: dict[str, Any] = {"dims": {}}
        table = []
        fig, ax = figure(2, width=5.4)
        for di, (d, res) in enumerate(zip(dims, results, strict=True)):
            spec = {**base, "landscape": {**land, "dim": d}}
            pr = problem(spec)
            x = np.asarray(res.final_x, dtype=np.float64)
            ok = np.all(np.isfinite(x), axis=1) & (np.asarray(res.status) <= 1)
            x = x[ok]
            g = np.linalg.norm(pr.grad(x), axis=1) if x.size else np.zeros(0)
            crit = x[g < GRAD_TOL]
            # the same critical point reached from several starts counts once
            if crit.size:
                _, first = np.unique(np.round(crit, 6), axis=0, return_index=True)
                crit = crit[np.sort(first)]
            loss = pr.value(crit) if crit.size else np.zeros(0)
            ev = np.linalg.eigvalsh(pr.hess(crit)) if crit.size else np.zeros((0, d))
            ratio = np.mean(ev > EIG_TOL, axis=1) if crit.size else np.zeros(0)
            minima = int(np.sum(np.all(ev > EIG_TOL, axis=1)))
            rho, rlo, rhi = spearman(loss, ratio) if crit.shape[0] >= 3 else (np.nan, np.nan, np.nan)
            measured["dims"][str(d)] = {"critical": int(crit.shape[0]), "minima": minima, "rho": rho, "rho_low": rlo,
                                        "rho_high": rhi, "starts": n}  # fmt: skip
            lo, hi = wilson(minima, int(crit.shape[0]))
            table.append({"D": d, "starts": n, "distinct critical points": int(crit.shape[0]), "minima": minima,
                          "share of minima": minima / crit.shape[0] if crit.shape[0] else float("nan"),
                          "wilson low": lo, "wilson high": hi, "spearman rho(loss, ratio)": rho})  # fmt: skip
            ax[0, 0].scatter(ratio, loss, s=6, alpha=0.5, color=f"C{di}", label=f"D = {d}")
        ax[0, 0].set_xlabel("minimum ratio: share of positive Hessian eigenvalues (1 = minimum)")
        ax[0, 0].set_ylabel("loss at the critical point")
        ax[0, 0].legend(fontsize=7)
        ax[0, 0].set_title("critical points: loss vs minimum ratio", fontsize=9)
        sh = np.array([t["share of minima"] for t in table])
        lo_b = np.array([t["wilson low"] for t in table])
        hi_b = np.array([t["wilson high"] for t in table])
        ax[0, 1].errorbar(dims, sh, yerr=[sh - lo_b, hi_b - sh], marker="o", capsize=4, label="share of minima "
                          "(Wilson 95%)")  # fmt: skip
        ax[0, 1].set_xscale("log", base=2)
        ax[0, 1].set_xlabel("dimension D")
        ax[0, 1].set_ylabel("share of critical points that are minima")
        ax[0, 1].set_ylim(-0.02, 1.02)
        ax[0, 1].legend(fontsize=7)
        ax[0, 1].set_title("true minima vs dimension", fontsize=9)
        f1 = save(fig, out, "minimum_ratio", f"random landscape (64 Fourier features, c = 0.1), Newton lr 1 from {n} "
                                            f"starts U(-3, 3)^D per D; critical: |grad| < {GRAD_TOL:g}")  # fmt: skip
        return ExperimentResult(name=self.name, claim=self.claim, size=size, verdict=self.verdict_from(measured),
                                table=table, figures=[f1], specs={}, measured=measured,
                                notes=["Small MLPs are not included: a Newton search for their critical points needs "
                                       "the dense Hessian per particle in the kernel, slow beyond a few dozen "
                                       "parameters; D is kept <= 12 for the same reason (Newton's Jacobi eigen-solve "
                                       "per particle and step)."])  # fmt: skip


EXPERIMENT = MinimumRatio

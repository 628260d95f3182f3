"""convex-single-basin: on a convex landscape every start ends in the same minimum.

Convex quadratics (D = 2 and D = 10, condition number 100) and logistic
regression on noisy moons (not linearly separable, so the minimum is unique
and finite) are run from a wide box of starts under gradient descent; the end
points are clustered and the share in the largest cluster is the basin
fraction. Himmelblau (four minima) is run beside them as a control that the
measurement does find several basins when there are several.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._plot import figure, save
from .base import Experiment, ExperimentResult, Verdict, depends
from .stats import wilson

SIZES = {"tiny": (64, 1500), "small": (1000, 3000), "full": (4000, 4000)}
#: End points closer than this (relative to the scale of the starts) are one attractor.
TOL = 1e-2
#: A convex landscape's claim holds when the Wilson lower bound of its largest basin is at least this.
MIN_FRACTION = 0.9

LANDSCAPES: dict[str, dict[str, Any]] = {
    "quadratic D=2": {"landscape": {"name": "quadratic", "dim": 2, "condition": 100.0, "rotation": 0.5},
                      "optimizer": {"name": "sgd", "lr": 0.015}, "init": {"scheme": "uniform", "low": -5.0,
                                                                             "high": 5.0}},
    "quadratic D=10": {"landscape": {"name": "quadratic", "dim": 10, "condition": 100.0, "rotation": 0.5},
                       "optimizer": {"name": "sgd", "lr": 0.015}, "init": {"scheme": "uniform", "low": -5.0,
                                                                              "high": 5.0}},
    "logistic regression (moons)": {"landscape": {"name": "logistic_regression"},
                                    "data": {"name": "moons", "samples": 200, "noise": 0.3, "test_fraction": 0.0},
                                    "optimizer": {"name": "sgd", "lr": 1.0},
                                    "init": {"scheme": "normal", "mean": 0.0, "std": 3.0}},
    "himmelblau (control, 4 minima)": {"landscape": {"name": "himmelblau"}, "optimizer": {"name": "sgd", "lr": 0.005},
                                       "init": {"scheme": "uniform", "low": -5.0, "high": 5.0}},
}  # fmt: skip
CONTROL = "himmelblau (control, 4 minima)"


class ConvexSingleBasin(Experiment):
    name = "convex-single-basin"
    claim = ("On a convex landscape (quadratic, logistic regression) there is one attractor: fraction 1 from "
             "every start.")

    def verdict_from(self, m: dict[str, Any]) -> Verdict:
        """Per convex landscape: one cluster holding a share whose Wilson lower bound is >= 0.9 of all particles
        (not converged and diverged particles count against it). The worst landscape is the statistic."""
        per: dict[str, bool] = {}
        worst = None
        for name, r in m["landscapes"].items():
            if r["control"]:
                continue
            lo, hi = wilson(r["largest"], r["particles"])
            per[name] = r["clusters"] == 1 and lo >= MIN_FRACTION
            if worst is None or r["largest"] / r["particles"] < worst[0]:
                worst = (r["largest"] / r["particles"], lo, hi, name)
        assert worst is not None
        ctrl = [f"{k}: {r['clusters']} clusters" for k, r in m["landscapes"].items() if r["control"]]
        return Verdict(
            outcome=depends(per, "the landscape"),
            criterion=(f"every convex landscape: end points form 1 cluster (tolerance {TOL}) and the Wilson 95% lower "
                       f"bound of its share of all particles is >= {MIN_FRACTION}"),
            statistic=f"smallest largest-basin fraction ({worst[3]})",
            value=worst[0], interval=(worst[1], worst[2]),
            details="; ".join(f"{k}: {r['clusters']} cluster(s), {r['largest']}/{r['particles']} in the largest"
                              for k, r in m["landscapes"].items() if not r["control"])
            + ("; control " + ", ".join(ctrl) if ctrl else ""),
        )  # fmt: skip

    def execute(self, size: str, out: Path, runner: Any) -> ExperimentResult:
        from ._measure import clusters

        n, steps = SIZES[size]
        measured: dict[str, Any] = {"landscapes": {}}
        fig, ax = figure(2, width=6.5)
        table = []
        for key, tables in LANDSCAPES.items():
            base = {"run": {"particles": n, "steps": steps, "record_every": max(1, steps // 20), "seed": 2},
                    "stop": {"grad_tol": 1e-6, "patience": 1, "bound": 1e6}, **tables}  # fmt: skip
            slug = key.split(" ")[0] + ("10" if "D=10" in key else "")
            (res,) = runner.grid(slug, base)
            lab = clusters(res.final_x, TOL * max(1.0, float(np.max(np.abs(res.init_x)))))
            ok = (np.asarray(res.status) <= 1) & (lab >= 0)
            n_cl = int(lab.max() + 1) if (lab >= 0).any() else 0
            # clusters holding under 1% of the particles are stragglers still moving, not attractors
            sizes = np.bincount(lab[ok], minlength=max(1, n_cl))
            n_attr = int(np.sum(sizes >= max(2, 0.01 * n)))
            largest = int(sizes.max()) if sizes.size else 0
            r = {"particles": n, "clusters": n_attr, "largest": largest, "converged": int(np.sum(res.status == 1)),
                 "diverged": int(np.sum(res.status >= 2)), "control": key == CONTROL,
                 "sizes": sorted(sizes.tolist(), reverse=True)[:8]}  # fmt: skip
            measured["landscapes"][key] = r
            lo, hi = wilson(largest, n)
            table.append({"landscape": key, "particles": n, "converged": r["converged"], "diverged": r["diverged"],
                          "attractors": n_attr, "largest fraction": largest / n, "wilson low": lo, "wilson high": hi})
            fr = sizes[sizes >= max(2, 0.01 * n)] / n
            y = len(table) - 1
            left = 0.0
            for j, f in enumerate(sorted(fr, reverse=True)):
                ax[0, 0].barh(y, f, left=left, color=f"C{j}", edgecolor="k", lw=0.5)
                left += f
            ax[0, 0].errorbar([largest / n], [y], xerr=[[largest / n - lo], [hi - largest / n]], fmt="k|", capsize=4)
            d = np.linalg.norm(res.final_x - np.median(res.final_x[ok], axis=0), axis=1) if ok.any() else np.ones(n)
            ax[0, 1].hist(np.log10(d + 1e-16), bins=40, histtype="step", lw=1.5, label=key)
        ax[0, 0].set_yticks(range(len(table)), [t["landscape"] for t in table], fontsize=7)
        ax[0, 0].set_xlabel("fraction of particles (colour: attractor; bar: Wilson 95%)")
        ax[0, 0].set_xlim(0, 1.02)
        ax[0, 0].set_title("basin fractions", fontsize=9)
        ax[0, 1].set_xlabel("log10 |end point - median end point| (param. units)")
        ax[0, 1].set_ylabel("particles")
        ax[0, 1].legend(fontsize=7)
        ax[0, 1].set_title("spread of end points", fontsize=9)
        f1 = save(fig, out, "basins", f"GD from wide boxes: {n} particles, {steps} steps, quadratics condition 100 "
                                     f"(lr 0.015), logistic regression on moons (lr 1.0), tolerance {TOL}")  # fmt: skip
        return ExperimentResult(name=self.name, claim=self.claim, size=size, verdict=self.verdict_from(measured),
                                table=table, figures=[f1], specs={}, measured=measured)  # fmt: skip


EXPERIMENT = ConvexSingleBasin

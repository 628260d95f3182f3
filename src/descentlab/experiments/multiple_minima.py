"""multiple-minima: landscapes with several minima of the same cost.

Himmelblau's function has four minima, all with f = 0: gradient descent from a
grid of starts ends in each of them (attractors, fractions, losses, basin
map). An over-parameterised student MLP (6 tanh units) fitting a teacher with 2
units, trained from independent inits, reaches many different end points of
the same loss: minima far apart in weight space (hidden-unit permutations and
other symmetries).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._plot import figure, save
from .base import Experiment, ExperimentResult, Verdict, depends
from .stats import wilson

SIZES = {"tiny": (12, 16, 300), "small": (40, 64, 1500), "full": (150, 256, 4000)}
TOL = 1e-2
#: Equal cost: every attractor's loss within this of the lowest one.
EQUAL_LOSS = 1e-6
#: MLP end points are "far apart" when the nearest other end point of equal loss is further than this
#: fraction of the typical end-point norm.
FAR = 0.1

HIMMELBLAU = {"landscape": {"name": "himmelblau"}, "optimizer": {"name": "sgd", "lr": 0.005},
              "stop": {"grad_tol": 1e-8, "patience": 1, "bound": 1e6}}  # fmt: skip


def mlp_spec(particles: int, epochs: int) -> dict[str, Any]:
    return {
        "run": {"particles": particles, "epochs": epochs, "record_every_epochs": max(1, epochs // 20), "seed": 5},
        "landscape": {"name": "mlp", "hidden": [6], "activation": "tanh", "loss": "mse"},
        "data": {"name": "teacher", "samples": 100, "features": 2, "hidden": [2], "noise": 0.0, "test_fraction": 0.0,
                 "seed": 1},
        "optimizer": {"name": "adam", "lr": 0.01},
        "init": {"scheme": "xavier_normal", "bias": "zeros"},
        "stop": {"grad_tol": 0.0},
    }  # fmt: skip


class MultipleMinima(Experiment):
    name = "multiple-minima"
    claim = ("Some landscapes have several minima of equal cost: Himmelblau's four, and an over-parameterised "
             "teacher-student MLP whose equally good minima lie far apart in weight space.")  # fmt: skip

    def verdict_from(self, m: dict[str, Any]) -> Verdict:
        """Himmelblau: >= 2 attractors, all with loss within 1e-6 of the best, each with Wilson lower bound > 0.05.
        MLP: among end points with loss <= 2x the median, the share whose nearest such end point is further than
        FAR x the mean norm has a Wilson lower bound >= 0.5."""
        h = m["himmelblau"]
        losses = np.asarray(h["losses"], dtype=np.float64)
        fr_lo = [wilson(c, h["particles"])[0] for c in h["counts"]]
        h_ok = len(losses) >= 2 and float(losses.max() - losses.min()) <= EQUAL_LOSS and min(fr_lo) > 0.05
        mm = m["mlp"]
        lo, hi = wilson(mm["far"], mm["good"])
        m_ok = mm["good"] > 0 and lo >= 0.5
        out = depends({"himmelblau": h_ok, "teacher-student MLP": m_ok}, "the landscape")
        return Verdict(
            outcome=out,
            criterion=(f"Himmelblau: >= 2 attractors with losses within {EQUAL_LOSS} of each other, each holding a "
                       f"Wilson lower bound > 0.05 of the starts; MLP: Wilson lower bound of the share of low-loss end "
                       f"points (<= 2x median) with no other such end point within {FAR} x mean norm >= 0.5"),
            statistic="MLP share of equally good end points far from all others",
            value=mm["far"] / mm["good"] if mm["good"] else float("nan"), interval=(lo, hi),
            details=(f"Himmelblau: {len(losses)} attractors, losses {[f'{v:.1e}' for v in losses]}, counts "
                     f"{h['counts']} of {h['particles']}; MLP: {mm['far']}/{mm['good']} low-loss end points far apart, "
                     f"median loss {mm['median_loss']:.2e}, median nearest distance {mm['median_nearest']:.3g} "
                     f"(mean norm {mm['mean_norm']:.3g})"),
        )  # fmt: skip

    def execute(self, size: str, out: Path, runner: Any) -> ExperimentResult:
        from ._measure import clusters, problem

        res_h, n_mlp, epochs = SIZES[size]
        steps = 3000 if size != "tiny" else 1500
        base = {"run": {"particles": res_h * res_h, "steps": steps, "record_every": steps // 10, "seed": 3},
                "init": {"scheme": "grid", "low": -5.0, "high": 5.0, "resolution": res_h}, **HIMMELBLAU}  # fmt: skip
        (rh,) = runner.grid("himmelblau", base)
        lab = clusters(rh.final_x, TOL)
        ok = np.asarray(rh.status) <= 1
        sizes = np.bincount(lab[ok & (lab >= 0)])
        keep = [k for k in range(sizes.size) if sizes[k] >= max(2, 0.01 * lab.size)]
        pr = problem(base)
        centres = np.array([np.median(rh.final_x[lab == k], axis=0) for k in keep])
        losses = pr.value(centres) if keep else np.zeros(0)
        counts = [int(sizes[k]) for k in keep]
        table = []
        for c, loss, cnt in zip(centres, losses, counts, strict=True):
            lo, hi = wilson(cnt, lab.size)
            table.append({"landscape": "himmelblau", "attractor": f"({c[0]:.3f}, {c[1]:.3f})", "loss": float(loss),
                          "fraction": cnt / lab.size, "wilson low": lo, "wilson high": hi})  # fmt: skip
        # teacher-student MLP
        spec = mlp_spec(n_mlp, epochs)
        (rm,) = runner.grid("teacher_student", spec)
        fl = np.asarray(rm.final_loss, dtype=np.float64)
        med = float(np.median(fl[np.isfinite(fl)]))
        good = np.isfinite(fl) & (fl <= 2 * med)
        x = rm.final_x[good]
        mean_norm = float(np.mean(np.linalg.norm(x, axis=1))) if x.size else float("nan")
        if x.shape[0] >= 2:
            dist = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2)
            np.fill_diagonal(dist, np.inf)
            nearest = dist.min(axis=1)
        else:
            nearest = np.zeros(0)
        far = int(np.sum(nearest > FAR * mean_norm))
        table.append({"landscape": f"teacher-student MLP ({n_mlp} inits)", "attractor": f"{int(good.sum())} low-loss",
                      "loss": med, "fraction": far / max(1, int(good.sum())),
                      "wilson low": wilson(far, int(good.sum()))[0], "wilson high": wilson(far, int(good.sum()))[1]})
        measured = {"himmelblau": {"losses": [float(v) for v in losses], "counts": counts, "particles": int(lab.size)},
                    "mlp": {"good": int(good.sum()), "far": far, "median_loss": med, "mean_norm": mean_norm,
                            "median_nearest": float(np.median(nearest)) if nearest.size else float("nan"),
                            "particles": n_mlp}}  # fmt: skip
        fig, ax = figure(3, width=4.6)
        grid_lab = lab.reshape(res_h, res_h)
        a = ax[0, 0]
        from matplotlib.colors import to_rgb

        rank = {k: j for j, k in enumerate(keep)}
        rgb = np.array([to_rgb(f"C{rank[v] % 10}") if v in rank else (1.0, 1.0, 1.0) for v in grid_lab.ravel()])
        a.imshow(rgb.reshape(res_h, res_h, 3).transpose(1, 0, 2), origin="lower", extent=(-5, 5, -5, 5),
                 interpolation="nearest")  # fmt: skip
        a.plot(centres[:, 0], centres[:, 1], "k*", ms=10, label="attractors (f = 0); colour as in the bars")
        a.set_xlabel("x (start, dimensionless)")
        a.set_ylabel("y (start, dimensionless)")
        a.legend(fontsize=7, loc="lower left")
        a.set_title(f"Himmelblau basin map ({res_h}x{res_h} grid)", fontsize=9)
        b = ax[0, 1]
        b.bar(range(len(counts)), [c / lab.size for c in counts], color=[f"C{k}" for k in range(len(counts))],
              yerr=np.array([[c / lab.size - wilson(c, lab.size)[0] for c in counts],
                             [wilson(c, lab.size)[1] - c / lab.size for c in counts]]), capsize=4,
              label="fraction, Wilson 95%")  # fmt: skip
        b.set_xticks(range(len(counts)), [f"({c[0]:.1f},{c[1]:.1f})\nf={v:.0e}" for c, v in zip(centres, losses,
                                                                                                strict=True)],
                     fontsize=7)  # fmt: skip
        b.set_ylabel("basin fraction of the grid")
        b.set_xlabel("attractor (position, loss)")
        b.legend(fontsize=7)
        b.set_title("Himmelblau: equal-loss minima", fontsize=9)
        c = ax[0, 2]
        c.scatter(nearest / mean_norm if x.size else [], fl[good], s=10, label="low-loss end points")
        c.axvline(FAR, color="k", ls="--", lw=0.8, label=f"far threshold {FAR}")
        c.set_xscale("log")
        c.set_yscale("log")
        c.set_xlabel("distance to nearest other end point / mean norm")
        c.set_ylabel("final training loss (MSE)")
        c.legend(fontsize=7)
        c.set_title("student MLP 2-6-1 on teacher 2-2-1", fontsize=9)
        f1 = save(fig, out, "minima", f"Himmelblau: GD lr 0.005, {steps} steps; MLP: Adam lr 0.01, {epochs} full-batch "
                                     f"epochs, {n_mlp} Xavier inits, teacher data 100 samples, no noise")  # fmt: skip
        return ExperimentResult(name=self.name, claim=self.claim, size=size, verdict=self.verdict_from(measured),
                                table=table, figures=[f1], specs={}, measured=measured)  # fmt: skip


EXPERIMENT = MultipleMinima

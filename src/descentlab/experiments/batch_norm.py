"""batch-norm: batch normalization on a deep MLP: largest stable learning rate, speed and sharpness.

A deep MLP 2-16x4-2 (tanh) on spirals, minibatches of 32, SGD with momentum
0.9, with and without batch normalization (the engine's ``batch_norm``: batch
statistics in training updates, full-data statistics for the loss), over a
grid of learning rates. Per (BN, lr): the share diverged (non-finite, or a final
loss above twice the initial one), the share stuck above the chance loss, epochs to a
loss target and the share reaching it, and at the best learning rate the
sharpness (largest Hessian eigenvalue of the full-batch loss) of end points.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._plot import figure, save
from .base import Experiment, ExperimentResult, Verdict, depends
from .init_scale import failed
from .stats import bootstrap, wilson

SIZES = {"tiny": (6, 4, 2), "small": (16, 20, 3), "full": (128, 80, 16)}
LRS = [0.01, 0.03, 0.1, 0.2, 0.3, 1.0]
TARGET = 0.3


def base_spec(n: int, epochs: int) -> dict[str, Any]:
    return {
        "run": {"particles": n, "epochs": epochs, "record_every_epochs": 1, "seed": 41},
        "landscape": {"name": "mlp", "hidden": [16] * 4, "activation": "tanh", "batch_norm": False},
        "data": {"name": "spirals", "samples": 300, "noise": 0.1, "test_fraction": 0.25, "seed": 0},
        "batch": {"size": 32, "shuffle": True},
        "optimizer": {"name": "sgd", "lr": LRS[0], "momentum": 0.9},
        "init": {"scheme": "xavier_uniform", "bias": "zeros"},
        "stop": {"grad_tol": 0.0, "bound": 1e6},
    }


def largest_stable(lrs: list[float], fails: list[int], n: int) -> float:
    """The largest lr whose diverged share has a Wilson upper bound < 0.5 (0 if none)."""
    ok = [lr for lr, k in zip(lrs, fails, strict=True) if wilson(k, n)[1] < 0.5]
    return max(ok) if ok else 0.0


class BatchNorm(Experiment):
    name = "batch-norm"
    claim = ("Batch normalization lets a deep network train at larger learning rates and reach a loss target in "
             "fewer epochs.")  # fmt: skip

    def verdict_from(self, m: dict[str, Any]) -> Verdict:
        """(a) the largest stable lr (diverged share's Wilson upper bound < 0.5; diverged: non-finite, beyond the
        bound, or final loss above twice the initial one) with BN exceeds the one without;
        (b) at each one's best lr, the bootstrap 95% upper bound of BN's median epochs to target is below the lower
        bound without BN, or (censored runs) the Wilson interval of the share reaching the target within the run
        with BN lies above the one without."""
        r_bn, r_no = m["bn"], m["no_bn"]
        s_bn = largest_stable(m["lrs"], r_bn["failed"], m["n"])
        s_no = largest_stable(m["lrs"], r_no["failed"], m["n"])
        reach_bn = wilson(r_bn["best_reached"], m["n"])
        reach_no = wilson(r_no["best_reached"], m["n"])
        per = {"larger stable lr": s_bn > s_no,
               "faster to target": bool(r_bn["best_epochs"][2] < r_no["best_epochs"][1] or reach_bn[0] > reach_no[1])}
        k = r_bn["failed"][m["lrs"].index(s_no)] if s_no in m["lrs"] else 0
        return Verdict(
            outcome=depends(per, "the measure"),
            criterion=("largest stable lr (Wilson upper bound of the diverged share < 0.5; diverged: non-finite or "
                       "final loss above twice the initial) with BN > without; at each "
                       "one's best lr, bootstrap 95% interval of median epochs to training loss "
                       f"{TARGET} with BN entirely below the one without (never reached: 2x the run), or the Wilson "
                       "interval of the share reaching it within the run entirely above"),
            statistic=f"diverged share with BN at the largest stable lr without BN ({s_no:g})",
            value=k / m["n"], interval=wilson(k, m["n"]),
            details=(f"largest stable lr: BN {s_bn:g}, no BN {s_no:g}; reached the target at the best lr: BN "
                     f"{r_bn['best_reached']}/{m['n']}, no BN {r_no['best_reached']}/{m['n']}; best-lr median epochs "
                     "to target: BN "
                     f"{r_bn['best_epochs'][0]:.3g} [{r_bn['best_epochs'][1]:.3g}, {r_bn['best_epochs'][2]:.3g}] at lr "
                     f"{r_bn['best_lr']:g}, no BN {r_no['best_epochs'][0]:.3g} [{r_no['best_epochs'][1]:.3g}, "
                     f"{r_no['best_epochs'][2]:.3g}] at lr {r_no['best_lr']:g}; sharpness at the best lr: BN "
                     f"{r_bn['sharpness']:.3g}, no BN {r_no['sharpness']:.3g}"),
        )  # fmt: skip

    def execute(self, size: str, out: Path, runner: Any) -> ExperimentResult:
        from ..engine.spec import parse_spec
        from ._measure import diverged, problem, sharpness, steps_to

        n, epochs, n_sharp = SIZES[size]
        base = base_spec(n, epochs)
        measured: dict[str, Any] = {"lrs": LRS, "n": n}
        table = []
        fig, ax = figure(3, width=4.8)
        for bi, bn in enumerate((False, True)):
            key = "bn" if bn else "no_bn"
            spec_bn = {**base, "landscape": {**base["landscape"], "batch_norm": bn}}
            fs = parse_spec(spec_bn).finite_sum
            per_epoch = fs.steps_for_epochs(1)
            results = runner.grid(key, spec_bn, [{"optimizer.lr": lr} for lr in LRS])
            fails, eps = [], []
            for lr, res in zip(LRS, results, strict=True):
                f = failed(res, int(fs.data.n_classes))
                div = diverged(res)
                s = steps_to(res.trajectory_loss, res.record_steps, TARGET) / per_epoch
                s = np.where(np.isfinite(s) & ~div, s, 2.0 * epochs)
                fails.append(int(np.sum(div)))
                eps.append(s)
                med, lo, hi = bootstrap(s, np.median)
                wl, wh = wilson(int(np.sum(div)), n)
                table.append({"batch norm": bn, "lr": lr, "diverged": float(np.mean(div)), "diverged low": wl,
                              "diverged high": wh, "stuck or diverged": float(np.mean(f > 0)),
                              "reached target": float(np.mean(s < 2.0 * epochs)), "median epochs to target": med,
                              "low": lo, "high": hi,
                              "median final loss": float(np.median(res.final_loss)),
                              "median test acc": float(np.median(np.asarray(res.metrics["test_accuracy"])[:, -1]))})
            meds = [float(np.median(e)) for e in eps]
            best = int(np.argmin(meds))
            pr = problem(spec_bn)
            res_b = results[best]
            sh = [sharpness(pr.hvp, x, pr.dim, probes=8, seed=i)[0] for i, x in enumerate(res_b.final_x[:n_sharp])
                  if np.all(np.isfinite(x))]  # fmt: skip
            measured[key] = {"failed": fails, "best_lr": LRS[best],
                             "best_epochs": list(bootstrap(eps[best], np.median)),
                             "best_reached": int(np.sum(eps[best] < 2.0 * epochs)),
                             "sharpness": float(np.median(sh)) if sh else float("nan"), "median_epochs": meds}
            fr = np.array(fails) / n
            w = np.array([wilson(k, n) for k in fails])
            label = "with batch norm" if bn else "without"
            ax[0, 0].errorbar(LRS, fr, yerr=[fr - w[:, 0], w[:, 1] - fr], marker="o", capsize=3, color=f"C{bi}",
                              label=label)  # fmt: skip
            ax[0, 1].plot(LRS, meds, "o-", color=f"C{bi}", label=label)
            tl = np.asarray(res_b.trajectory_loss, dtype=np.float64)
            q = np.percentile(tl, [25, 50, 75], axis=0)
            ep = np.asarray(res_b.record_steps) / per_epoch
            ax[0, 2].plot(ep, q[1], color=f"C{bi}", label=f"{label}, best lr {LRS[best]:g}")
            ax[0, 2].fill_between(ep, q[0], q[2], color=f"C{bi}", alpha=0.2)
        ax[0, 0].set_xscale("log")
        ax[0, 0].set_xlabel("learning rate")
        ax[0, 0].set_ylabel("share diverged (Wilson 95%)")
        ax[0, 0].legend(fontsize=7)
        ax[0, 0].set_title("stability vs learning rate", fontsize=9)
        ax[0, 1].axhline(2 * epochs, color="k", lw=0.6, ls="--", label="never reached")
        ax[0, 1].set_xscale("log")
        ax[0, 1].set_xlabel("learning rate")
        ax[0, 1].set_ylabel(f"median epochs to training loss {TARGET}")
        ax[0, 1].legend(fontsize=7)
        ax[0, 1].set_title("speed vs learning rate", fontsize=9)
        ax[0, 2].set_yscale("log")
        ax[0, 2].set_xlabel("epoch")
        ax[0, 2].set_ylabel("training loss (median, IQR)")
        ax[0, 2].legend(fontsize=7)
        ax[0, 2].set_title("loss at each one's best lr", fontsize=9)
        f1 = save(fig, out, "batch_norm", f"MLP 2-16x4-2 tanh on spirals (300, 25% test), batch 32, SGD momentum 0.9, "
                                         f"{epochs} epochs, {n} particles per point")  # fmt: skip
        return ExperimentResult(name=self.name, claim=self.claim, size=size, verdict=self.verdict_from(measured),
                                table=table, figures=[f1], specs={}, measured=measured)  # fmt: skip


EXPERIMENT = BatchNorm

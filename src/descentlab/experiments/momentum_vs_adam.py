"""momentum-vs-adam: SGD with momentum vs Adam reaching a loss target on smooth landscapes.

An ill-conditioned quadratic (D = 10, condition 1000), Rosenbrock's valley and
an MLP on moons (minibatches of 32), each under heavy-ball momentum (0.9) and
Adam over one grid of learning rates. Per particle: the updates (MLP: epochs)
to a loss target. Compared at each optimizer's best learning rate (lowest
median), at matched learning rates, and as the share reaching the target
within a short and a long budget (MLP: 50 and 200 epochs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._plot import figure, save
from .base import Experiment, ExperimentResult, Verdict, depends
from .stats import bootstrap_diff, wilson

# particles (analytic, MLP), steps (analytic), epochs (MLP)
SIZES = {"tiny": (32, 12, 600, 40), "small": (300, 32, 3000, 200), "full": (2000, 256, 6000, 200)}
LANDSCAPES: dict[str, dict[str, Any]] = {
    "quadratic": {"spec": {"landscape": {"name": "quadratic", "dim": 10, "condition": 1000.0, "rotation": 0.3},
                           "init": {"scheme": "uniform", "low": -2.0, "high": 2.0}},
                  "lrs": [3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0], "target": 1e-4},
    "rosenbrock": {"spec": {"landscape": {"name": "rosenbrock", "dim": 2},
                            "init": {"scheme": "uniform", "low": -2.0, "high": 2.0}},
                   "lrs": [3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0], "target": 1e-4},
    "mlp": {"spec": {"landscape": {"name": "mlp", "hidden": [16], "activation": "tanh"},
                     "data": {"name": "moons", "samples": 200, "noise": 0.1, "test_fraction": 0.0, "seed": 0},
                     "batch": {"size": 32, "shuffle": True}, "init": {"scheme": "xavier_uniform", "bias": "zeros"}},
            "lrs": [3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0], "target": 0.05},
}  # fmt: skip
OPTIMIZERS = {"momentum": {"name": "momentum", "momentum": 0.9}, "adam": {"name": "adam"}}


def censored_median(s: np.ndarray) -> float:
    """Median with +inf (target never reached) kept: an upper-censored median."""
    return float(np.median(s))


class MomentumVsAdam(Experiment):
    name = "momentum-vs-adam"
    claim = "On smooth landscapes Adam reaches a loss target in fewer updates than SGD with momentum."

    def verdict_from(self, m: dict[str, Any]) -> Verdict:
        """Per landscape, each optimizer at its best lr: the bootstrap 95% interval of (median updates to target of
        momentum - of Adam), never reached counted as twice the run, lies above 0 (Adam faster: the claim holds)
        or not (equal or momentum faster)."""
        per: dict[str, bool] = {}
        first = None
        for key, r in m["landscapes"].items():
            per[key] = bool(r["diff_low"] > 0)
            if first is None:
                first = (key, r)
        assert first is not None
        key, r = first
        return Verdict(
            outcome=depends(per, "the landscape"),
            criterion=("per landscape at each optimizer's best lr (lowest median updates to target): bootstrap 95% "
                       "lower bound of median(momentum) - median(Adam) > 0; never reached counts as 2x the run"),
            statistic=f"median updates momentum - Adam ({key})", value=r["diff"],
            interval=(r["diff_low"], r["diff_high"]),
            details="; ".join(f"{k}: momentum lr {v['best_lr']['momentum']:g}{' (grid edge)' * v['edge']['momentum']} "
                              f"median {v['median']['momentum']:g}, Adam lr {v['best_lr']['adam']:g}"
                              f"{' (grid edge)' * v['edge']['adam']} median {v['median']['adam']:g}, difference "
                              f"{v['diff']:g} [{v['diff_low']:g}, {v['diff_high']:g}]"
                              for k, v in m["landscapes"].items()),
        )  # fmt: skip

    def execute(self, size: str, out: Path, runner: Any) -> ExperimentResult:
        from ._measure import steps_to

        n_a, n_m, steps, epochs = SIZES[size]
        measured: dict[str, Any] = {"landscapes": {}}
        table = []
        fig, ax = figure(3, 2, width=4.8, height=3.8)
        for li, (lname, ls) in enumerate(LANDSCAPES.items()):
            mlp = lname == "mlp"
            run: dict[str, Any] = {"particles": n_m if mlp else n_a, "seed": 11}
            if mlp:
                run.update({"epochs": epochs, "record_every_epochs": 1})
            else:
                run.update({"steps": steps, "record_every": max(1, steps // 300)})
            base = {"run": run, "optimizer": {**OPTIMIZERS["momentum"], "lr": ls["lrs"][0]},
                    "stop": {"grad_tol": 0.0, "bound": 1e6}, **ls["spec"]}  # fmt: skip
            points = [{"optimizer": {**o, "lr": lr}} for o in OPTIMIZERS.values() for lr in ls["lrs"]]
            results = runner.grid(lname, base, points)
            n = run["particles"]
            per_step = 1.0
            total = float(steps)
            if mlp:  # record steps are updates; report epochs
                per_step = float(results[0].record_steps[-1]) / epochs
                total = float(epochs)
            s_all: dict[tuple[str, float], np.ndarray] = {}
            idx = 0
            for oname in OPTIMIZERS:
                for lr in ls["lrs"]:
                    res = results[idx]
                    idx += 1
                    s = steps_to(res.trajectory_loss, res.record_steps, ls["target"]) / per_step
                    s[np.asarray(res.status) >= 2] = np.inf
                    s_all[(oname, lr)] = s
            budgets = (50.0, 200.0) if mlp else (total / 6, total)
            med = {k: censored_median(np.where(np.isfinite(v), v, 2 * total)) for k, v in s_all.items()}
            best = {o: min(ls["lrs"], key=lambda lr, o=o: (med[(o, lr)], lr)) for o in OPTIMIZERS}
            sm = np.where(np.isfinite(s_all[("momentum", best["momentum"])]), s_all[("momentum", best["momentum"])],
                          2 * total)  # fmt: skip
            sa = np.where(np.isfinite(s_all[("adam", best["adam"])]), s_all[("adam", best["adam"])], 2 * total)
            d, lo, hi = bootstrap_diff(sm, sa, np.median)
            measured["landscapes"][lname] = {
                "best_lr": best, "edge": {o: best[o] in (ls["lrs"][0], ls["lrs"][-1]) for o in OPTIMIZERS},
                "median": {o: med[(o, best[o])] for o in OPTIMIZERS}, "diff": d, "diff_low": lo,
                "diff_high": hi, "unit": "epochs" if mlp else "updates",
                "matched": {str(lr): {o: med[(o, lr)] for o in OPTIMIZERS} for lr in ls["lrs"]},
            }  # fmt: skip
            for (oname, lr), s in s_all.items():
                k_short, k_long = int(np.sum(s <= budgets[0])), int(np.sum(s <= budgets[1]))
                table.append({"landscape": lname, "optimizer": oname, "lr": lr, "best lr": lr == best[oname],
                              "median to target": med[(oname, lr)], "share within short budget": k_short / n,
                              "short low": wilson(k_short, n)[0], "share within long budget": k_long / n,
                              "long low": wilson(k_long, n)[0],
                              "budgets": f"{budgets[0]:g}/{budgets[1]:g} {'epochs' if mlp else 'updates'}"})
            # ECDF at the best lrs (solid) and at the matched lr of momentum's best (dashed)
            a = ax[0, li]
            for oi, oname in enumerate(OPTIMIZERS):
                for lr, style in ((best[oname], "-"), (best["momentum"] if oname == "adam" else best["adam"], "--")):
                    s = np.sort(s_all[(oname, lr)])
                    a.step(s, np.arange(1, s.size + 1) / s.size, style, color=f"C{oi}", where="post",
                           label=f"{oname} lr {lr:g}" + (" (best)" if lr == best[oname] else " (other's best)"))
            for b in budgets:
                a.axvline(b, color="grey", lw=0.6, ls=":")
            a.set_xscale("log")
            from matplotlib.ticker import NullFormatter

            a.xaxis.set_minor_formatter(NullFormatter())
            a.set_ylim(0, 1.02)
            a.set_xlabel(f"{'epochs' if mlp else 'updates'} to loss <= {ls['target']:g} (dotted: budgets)")
            a.set_ylabel("share of particles (ECDF)")
            a.legend(fontsize=6)
            a.set_title(f"{lname}: ECDF", fontsize=9)
            b_ax = ax[1, li]
            for oi, oname in enumerate(OPTIMIZERS):
                b_ax.plot(ls["lrs"], [med[(oname, lr)] for lr in ls["lrs"]], "o-", color=f"C{oi}", label=oname)
            b_ax.axhline(2 * total, color="k", lw=0.6, ls="--", label="never reached (2x run)")
            b_ax.set_xscale("log")
            b_ax.set_yscale("log")
            b_ax.set_xlabel("learning rate")
            b_ax.set_ylabel(f"median {'epochs' if mlp else 'updates'} to target")
            b_ax.legend(fontsize=6)
            b_ax.set_title(f"{lname}: matched learning rates", fontsize=9)
        f1 = save(fig, out, "momentum_vs_adam",
                  f"momentum 0.9 vs Adam (0.9, 0.999); quadratic D=10 cond 1000 and Rosenbrock: {n_a} particles, "
                  f"{steps} steps; MLP 2-16-2 moons, batch 32: {n_m} particles, {epochs} epochs")  # fmt: skip
        return ExperimentResult(name=self.name, claim=self.claim, size=size, verdict=self.verdict_from(measured),
                                table=table, figures=[f1], specs={}, measured=measured)  # fmt: skip


EXPERIMENT = MomentumVsAdam

"""learning-rate: too small is slow, too large diverges; schedules and adaptive methods beside a constant lr.

Gradient descent over a grid of learning rates on an ill-conditioned quadratic
(D = 10, condition 100: GD is stable for lr < 2 / 100) and on an MLP (moons,
full batch): the fraction of particles that diverge (non-finite or beyond the
bound) and the steps to a loss target, per lr. Beside them, at one lr: step,
cosine and warm-up schedules and Adagrad / RMSprop / Adam (final loss).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._plot import figure, save
from .base import Experiment, ExperimentResult, Verdict, depends
from .stats import bootstrap, wilson

SIZES = {"tiny": (24, 400, 40), "small": (120, 2000, 150), "full": (1000, 4000, 400)}
#: At most this many particles per MLP point (an MLP particle costs ~1000x a quadratic one).
MLP_PARTICLES = 240
#: Too small is slow: the smallest lr's median steps to target exceed this multiple of the best lr's.
SLOW_FACTOR = 2.0
#: Too large diverges: the Wilson lower bound of the diverged share at the largest lr exceeds this.
DIVERGED_MIN = 0.5

SETTINGS: dict[str, dict[str, Any]] = {
    "quadratic": {
        "spec": {"landscape": {"name": "quadratic", "dim": 10, "condition": 100.0, "rotation": 0.3},
                 "init": {"scheme": "uniform", "low": -3.0, "high": 3.0}},
        "lrs": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 1.8e-2, 2.2e-2, 3e-2, 1e-1],
        "target": 1e-4, "sched_lr": 0.015,
    },
    "mlp": {
        "spec": {"landscape": {"name": "mlp", "hidden": [16], "activation": "tanh"},
                 "data": {"name": "moons", "samples": 200, "noise": 0.2, "test_fraction": 0.0, "seed": 0},
                 "init": {"scheme": "xavier_uniform", "bias": "zeros"}},
        "lrs": [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0],
        "target": 0.3, "sched_lr": 0.5,
    },
}  # fmt: skip
ADAPTIVE = {"adagrad": 0.5, "rmsprop": 0.01, "adam": 0.02}


def _run_table(kind: str, n: int, length: int) -> dict[str, Any]:
    run: dict[str, Any] = {"particles": n, "seed": 7}
    if kind == "mlp":
        run.update({"epochs": length, "record_every_epochs": max(1, length // 25)})
    else:
        run.update({"steps": length, "record_every": max(1, length // 100)})
    return run


class LearningRate(Experiment):
    name = "learning-rate"
    claim = ("A learning rate too small converges slowly and one too large diverges; schedules and adaptive methods "
             "change how fast the loss falls.")  # fmt: skip

    def verdict_from(self, m: dict[str, Any]) -> Verdict:
        """Per landscape: the Wilson lower bound of the diverged share at the largest lr is > 0.5, and the
        bootstrap lower bound of the smallest lr's median steps to target is > 2x the upper bound of the best
        lr's (never reached: infinite)."""
        per: dict[str, bool] = {}
        parts = []
        stat = None
        for key, r in m["settings"].items():
            div_lo, div_hi = wilson(r["diverged"][-1], r["particles"])
            slow_lo = r["median_steps_low"][0]
            best = int(np.argmin(r["median_steps"]))
            fast_hi = r["median_steps_high"][best]
            slow = bool(slow_lo > SLOW_FACTOR * fast_hi)
            diverges = bool(div_lo > DIVERGED_MIN)
            per[key] = slow and diverges
            parts.append(f"{key}: diverged at lr {r['lrs'][-1]:g}: {r['diverged'][-1]}/{r['particles']} "
                         f"[{div_lo:.2f}, {div_hi:.2f}]; median steps to target at lr {r['lrs'][0]:g}: "
                         f"{r['median_steps'][0]:g} (low {slow_lo:g}) vs best lr {r['lrs'][best]:g}: "
                         f"{r['median_steps'][best]:g} (high {fast_hi:g}); slow: {slow}, diverges: {diverges}")
            if stat is None:
                stat = (key, r["diverged"][-1] / r["particles"], div_lo, div_hi, r["lrs"][-1])
        assert stat is not None
        return Verdict(
            outcome=depends(per, "the landscape"),
            criterion=("diverged: non-finite, beyond |x| = 1e6, or final loss above twice the initial loss; "
                       "per landscape: Wilson lower bound of the diverged share at the largest lr > "
                       f"{DIVERGED_MIN} and "
                       f"bootstrap lower bound of the median steps to target at the smallest lr > {SLOW_FACTOR} x the "
                       "upper bound at the best lr"),
            statistic=f"diverged share at lr {stat[4]:g} ({stat[0]})", value=stat[1], interval=(stat[2], stat[3]),
            details="; ".join(parts),
        )  # fmt: skip

    def execute(self, size: str, out: Path, runner: Any) -> ExperimentResult:
        n_all, steps, epochs = SIZES[size]
        measured: dict[str, Any] = {"settings": {}}
        table: list[dict[str, Any]] = []
        fig, ax = figure(3, width=4.8)
        finals: dict[str, dict[str, np.ndarray]] = {}
        from ._measure import diverged, steps_to

        for si, (key, st) in enumerate(SETTINGS.items()):
            length = epochs if key == "mlp" else steps
            n = min(n_all, MLP_PARTICLES) if key == "mlp" else n_all
            base = {"run": _run_table(key, n, length), "optimizer": {"name": "sgd", "lr": st["lrs"][0]},
                    "stop": {"grad_tol": 0.0, "bound": 1e6}, **st["spec"]}  # fmt: skip
            results = runner.grid(f"{key}_lr", base, [{"optimizer.lr": lr} for lr in st["lrs"]])
            r: dict[str, Any] = {"lrs": st["lrs"], "particles": n, "diverged": [], "median_steps": [],
                                 "median_steps_low": [], "median_steps_high": [], "target": st["target"]}  # fmt: skip
            for lr, res in zip(st["lrs"], results, strict=True):
                bad = diverged(res)
                div = int(np.sum(bad))
                s = steps_to(res.trajectory_loss, res.record_steps, st["target"])
                s[bad] = np.inf
                med, lo, hi = bootstrap(s, np.median)
                r["diverged"].append(div)
                r["median_steps"].append(med)
                r["median_steps_low"].append(lo)
                r["median_steps_high"].append(hi)
                wl, wh = wilson(div, n)
                table.append({"landscape": key, "setting": f"sgd lr {lr:g}", "diverged": div / n, "div low": wl,
                              "div high": wh, "median updates to target": med, "final loss median":
                              float(np.median(res.final_loss))})  # fmt: skip
            measured["settings"][key] = r
            lrs = np.asarray(st["lrs"])
            fr = np.asarray(r["diverged"]) / n
            w = np.array([wilson(k, n) for k in r["diverged"]])
            ax[0, 0].errorbar(lrs, fr, yerr=[fr - w[:, 0], w[:, 1] - fr], marker="o", capsize=3, color=f"C{si}",
                              label=f"{key}")  # fmt: skip
            med = np.asarray(r["median_steps"], dtype=np.float64)
            finite = np.isfinite(med)
            lo_b = np.asarray(r["median_steps_low"])
            hi_b = np.asarray(r["median_steps_high"])
            cap = length * (1 if key == "quadratic" else results[0].record_steps[-1] / max(1, length)) * 1.5
            yplot = np.where(finite, med, cap)
            ax[0, 1].errorbar(lrs[finite], med[finite], yerr=[med[finite] - lo_b[finite],
                              np.minimum(hi_b[finite], cap) - med[finite]], marker="o", capsize=3, color=f"C{si}",
                              label=f"{key} (target loss {st['target']:g})")  # fmt: skip
            ax[0, 1].plot(lrs[~finite], yplot[~finite], "x", color=f"C{si}", ms=9,
                          label=f"{key}: target not reached (median)")  # fmt: skip
            # schedules and adaptive methods at one lr
            lr0 = st["sched_lr"]
            T = int(results[0].record_steps[-1])
            variants = {
                "constant": {"optimizer": {"name": "sgd", "lr": lr0}, "schedule.name": "constant"},
                "step": {"optimizer": {"name": "sgd", "lr": lr0}, "schedule": {"name": "step",
                                                                              "step_size": max(1, T // 3),
                                                                              "gamma": 0.3}},
                "cosine": {"optimizer": {"name": "sgd", "lr": lr0}, "schedule": {"name": "cosine"}},
                "warm-up + cosine": {"optimizer": {"name": "sgd", "lr": lr0},
                                     "schedule": {"name": "cosine", "warmup_steps": max(1, T // 10)}},
                **{a: {"optimizer": {"name": a, "lr": lr}, "schedule.name": "constant"} for a, lr in ADAPTIVE.items()},
            }  # fmt: skip
            sbase = {**base, "schedule": {"name": "constant"}}
            sres = runner.grid(f"{key}_schedules", sbase, list(variants.values()))
            finals[key] = {}
            for vname, res in zip(variants, sres, strict=True):
                fl = np.asarray(res.final_loss, dtype=np.float64)
                finals[key][vname] = fl
                med, lo, hi = bootstrap(fl, np.median)
                div = int(np.sum(diverged(res)))
                table.append({"landscape": key, "setting": f"{vname} (lr {variants[vname]['optimizer']['lr']:g})",
                              "diverged": div / n, "div low": wilson(div, n)[0], "div high": wilson(div, n)[1],
                              "median updates to target": float(np.median(steps_to(res.trajectory_loss,
                                                                                   res.record_steps, st["target"]))),
                              "final loss median": med})  # fmt: skip
        ax[0, 0].axvline(2 / 100, color="C0", ls=":", lw=1, label="2 / lambda_max (quadratic)")
        ax[0, 0].set_xscale("log")
        ax[0, 0].set_xlabel("learning rate (GD, constant)")
        ax[0, 0].set_ylabel("fraction diverged (Wilson 95%)")
        ax[0, 0].legend(fontsize=7)
        ax[0, 0].set_title("divergence vs learning rate", fontsize=9)
        ax[0, 1].set_xscale("log")
        ax[0, 1].set_yscale("log")
        ax[0, 1].set_xlabel("learning rate (GD, constant)")
        ax[0, 1].set_ylabel("median updates to target (bootstrap 95%)")
        ax[0, 1].legend(fontsize=7)
        ax[0, 1].set_title("speed vs learning rate", fontsize=9)
        c = ax[0, 2]
        labels = []
        data = []
        for key in finals:
            for vname, fl in finals[key].items():
                labels.append(f"{key}: {vname}")
                data.append(np.log10(np.clip(fl[np.isfinite(fl)], 1e-16, None)))
        c.boxplot(data, vert=False, widths=0.6)
        c.set_yticks(range(1, len(labels) + 1), labels, fontsize=7)
        c.set_xlabel("log10 final training loss")
        c.set_title("schedules and adaptive methods", fontsize=9)
        f1 = save(fig, out, "learning_rate",
                  f"GD: quadratic D=10 cond 100, {steps} steps; MLP 2-16-2 tanh on moons, {epochs} full-batch epochs; "
                  f"{n_all} (MLP {min(n_all, MLP_PARTICLES)}) particles per point; schedules at lr "
                  f"{SETTINGS['quadratic']['sched_lr']} / {SETTINGS['mlp']['sched_lr']}")  # fmt: skip
        measured["schedules"] = {k: {v: float(np.median(a)) for v, a in d.items()} for k, d in finals.items()}
        return ExperimentResult(name=self.name, claim=self.claim, size=size, verdict=self.verdict_from(measured),
                                table=table, figures=[f1], specs={}, measured=measured,
                                notes=["The verdict judges the learning-rate sweep; schedules and adaptive methods are "
                                       "measured and shown (table, right panel), not judged."])  # fmt: skip


EXPERIMENT = LearningRate

"""batch-schedule: small minibatches first, then larger ones, vs a fixed small or a fixed large batch.

An MLP 2-32-2 (tanh) on noisy moons (400 samples, 25% test) trained with SGD
(lr 0.1, momentum 0.9) with a batch of 8 throughout, 128 throughout, or 8 for
the first half of the epochs then 128 (the engine's batch-size schedule). Per
particle: updates and epochs to a training-loss target, the noise of the final
loss (standard deviation over the last quarter of the records) and the test
accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._plot import figure, save
from .base import Experiment, ExperimentResult, Verdict, depends
from .stats import bootstrap, bootstrap_diff

SIZES = {"tiny": (8, 6), "small": (24, 24), "full": (96, 60)}
SMALL, LARGE = 8, 128
#: The loss target: this factor times the lowest median final training loss of the three (the data set is noisy,
#: so a fixed target may be out of reach).
TARGET_FACTOR = 1.1
#: Every variant records every 3 updates (one epoch of the large batch, 1/12 of the small one).
RECORD_EVERY = 3


def base_spec(n: int, epochs: int) -> dict[str, Any]:
    return {
        "run": {"particles": n, "epochs": epochs, "record_every": RECORD_EVERY, "seed": 23},
        "landscape": {"name": "mlp", "hidden": [32], "activation": "tanh"},
        "data": {"name": "moons", "samples": 400, "noise": 0.25, "test_fraction": 0.25, "seed": 0},
        "batch": {"size": SMALL, "shuffle": True},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "init": {"scheme": "xavier_uniform", "bias": "zeros"},
        "stop": {"grad_tol": 0.0, "bound": 1e6},
    }


class BatchSchedule(Experiment):
    name = "batch-schedule"
    claim = ("Small batches first and larger ones later reach a loss target in fewer epochs than a fixed large batch "
             "and end with less loss noise than a fixed small batch.")  # fmt: skip

    def verdict_from(self, m: dict[str, Any]) -> Verdict:
        """Bootstrap 95% upper bound of median epochs to target (schedule - fixed large) < 0, and of median final loss
        noise (schedule - fixed small) < 0."""
        per = {"fewer epochs than fixed large": m["epochs_diff"][2] < 0,
               "less noise than fixed small": m["noise_diff"][2] < 0}  # fmt: skip
        e = m["epochs_diff"]
        return Verdict(
            outcome=depends(per, "the comparison"),
            criterion=(f"target: {TARGET_FACTOR} x the lowest median final training loss ({m['target']:.4g}); "
                       f"bootstrap 95% upper bound of [median epochs to target (schedule) - (fixed {LARGE})] < 0 and "
                       f"of [median final-loss noise (schedule) - (fixed {SMALL})] < 0 (never reached: +inf)"),
            statistic=f"median epochs to target, schedule - fixed {LARGE}", value=e[0], interval=(e[1], e[2]),
            details=(f"epochs difference {e[0]:.3g} [{e[1]:.3g}, {e[2]:.3g}]; noise difference "
                     f"{m['noise_diff'][0]:.3g} [{m['noise_diff'][1]:.3g}, {m['noise_diff'][2]:.3g}]; test accuracy "
                     + ", ".join(f"{k} {v:.3f}" for k, v in m["test_acc"].items())),
        )  # fmt: skip

    def execute(self, size: str, out: Path, runner: Any) -> ExperimentResult:
        from ..engine.spec import parse_spec
        from ._measure import epochs_at, steps_to, tail_noise

        n, epochs = SIZES[size]
        base = base_spec(n, epochs)
        half = max(1, epochs // 2)
        sched_batch = {"schedule": [{"size": SMALL, "epochs": half}, {"size": LARGE}], "shuffle": True}
        variants = {
            f"fixed {SMALL}": {},
            f"fixed {LARGE}": {"batch.size": LARGE},
            f"{SMALL} then {LARGE}": {"batch": sched_batch},
        }  # fmt: skip
        results = dict(zip(variants, runner.grid("batches", base, list(variants.values())), strict=True))
        ep_to: dict[str, np.ndarray] = {}
        upd_to: dict[str, np.ndarray] = {}
        noise: dict[str, np.ndarray] = {}
        acc: dict[str, np.ndarray] = {}
        table = []
        fig, ax = figure(3, width=4.8)
        target = TARGET_FACTOR * min(float(np.median(r.final_loss)) for r in results.values())
        for i, (k, res) in enumerate(results.items()):
            fs = parse_spec(dict(res.spec)).finite_sum
            ep = epochs_at(fs, np.asarray(res.record_steps))
            s = steps_to(res.trajectory_loss, res.record_steps, target)
            upd_to[k] = s
            ep_to[k] = np.where(np.isfinite(s), np.interp(s, np.asarray(res.record_steps, dtype=np.float64), ep),
                                np.inf)  # fmt: skip
            # noise over the last quarter of the epochs
            late = ep >= 0.75 * epochs
            noise[k] = tail_noise(np.asarray(res.trajectory_loss)[:, late], 1.0)
            acc[k] = np.asarray(res.metrics["test_accuracy"], dtype=np.float64)[:, -1]
            med_e, lo_e, hi_e = bootstrap(ep_to[k], np.median)
            table.append({"batches": k, "median updates to target": float(np.median(s)),
                          "median epochs to target": med_e, "epochs low": lo_e, "epochs high": hi_e,
                          "median final loss": float(np.median(res.final_loss)),
                          "median final-loss noise (std)": float(np.median(noise[k])),
                          "median test accuracy": float(np.median(acc[k]))})  # fmt: skip
            tl = np.asarray(res.trajectory_loss, dtype=np.float64)
            q = np.percentile(tl, [25, 50, 75], axis=0)
            ax[0, 0].plot(ep, q[1], color=f"C{i}", label=k)
            ax[0, 0].fill_between(ep, q[0], q[2], color=f"C{i}", alpha=0.2)
            ax[0, 1].plot(np.asarray(res.record_steps), q[1], color=f"C{i}", label=k)
        ks = list(variants)
        measured = {
            "epochs_diff": list(bootstrap_diff(ep_to[ks[2]], ep_to[ks[1]], np.median)),
            "noise_diff": list(bootstrap_diff(noise[ks[2]], noise[ks[0]], np.median)),
            "test_acc": {k: float(np.median(v)) for k, v in acc.items()},
            "median_epochs": {k: float(np.median(v)) for k, v in ep_to.items()}, "target": target,
        }
        ax[0, 0].axhline(target, color="k", ls="--", lw=0.8, label=f"target {target:.3g}")
        ax[0, 0].axvline(half, color="grey", ls=":", lw=0.8, label="batch switch")
        ax[0, 0].set_yscale("log")
        ax[0, 0].set_xlabel("epoch")
        ax[0, 0].set_ylabel("training loss (cross-entropy), median and IQR")
        ax[0, 0].legend(fontsize=7)
        ax[0, 0].set_title("loss per epoch", fontsize=9)
        ax[0, 1].axhline(target, color="k", ls="--", lw=0.8)
        ax[0, 1].set_xscale("log")
        ax[0, 1].set_yscale("log")
        ax[0, 1].set_xlabel("updates")
        ax[0, 1].set_ylabel("median training loss")
        ax[0, 1].legend(fontsize=7)
        ax[0, 1].set_title("loss per update", fontsize=9)
        ax[0, 2].boxplot([acc[k] for k in ks], widths=0.6)
        ax[0, 2].set_xticks(range(1, len(ks) + 1), ks, fontsize=7)
        ax[0, 2].set_xlabel("batch size")
        ax[0, 2].set_ylabel("test accuracy (fraction correct)")
        ax[0, 2].set_title("test accuracy", fontsize=9)
        f1 = save(fig, out, "batch_schedule", f"MLP 2-32-2 tanh on moons (400, noise 0.25, 25% test), SGD lr 0.1 "
                                             f"momentum 0.9, {epochs} epochs, {n} particles; switch at epoch {half}")
        return ExperimentResult(name=self.name, claim=self.claim, size=size, verdict=self.verdict_from(measured),
                                table=table, figures=[f1], specs={}, measured=measured)  # fmt: skip


EXPERIMENT = BatchSchedule

"""init-scale: too small or too large initial weights stall or blow up a deep network.

Deep MLPs (2-16x6-2, tanh and relu) on moons, minibatches of 32, initialized
Xavier-normal times a scale factor from 1e-3 to 1e2. Per scale: the loss after
T epochs, the share of particles stuck (final loss above 95% of the initial
one or than the chance loss log 2) or diverged (non-finite, beyond the bound), and the per-layer gradient
norms at initialization (vanishing: the first layer's gradient much smaller
than the last one's; exploding: much larger).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._plot import figure, save
from .base import Experiment, ExperimentResult, Verdict, depends
from .stats import wilson

SIZES = {"tiny": (6, 4), "small": (24, 30), "full": (200, 100)}
SCALES = [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0]
ACTIVATIONS = ["tanh", "relu"]
DEPTH = 6
STUCK = 0.95


def base_spec(n: int, epochs: int, activation: str) -> dict[str, Any]:
    return {
        "run": {"particles": n, "epochs": epochs, "record_every_epochs": max(1, epochs // 10), "seed": 17},
        "landscape": {"name": "mlp", "hidden": [16] * DEPTH, "activation": activation},
        "data": {"name": "moons", "samples": 200, "noise": 0.1, "test_fraction": 0.2, "seed": 0},
        "batch": {"size": 32, "shuffle": True},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "init": {"scheme": "xavier_normal", "bias": "zeros", "scale_factor": 1.0},
        "stop": {"grad_tol": 0.0, "bound": 1e8},
    }


def failed(res: Any, n_classes: int) -> np.ndarray:
    """(N,) int8: 0 trained, 1 stuck (final loss > 0.95 x the lower of the initial loss and the chance loss
    log(classes)), 2 diverged (non-finite, beyond the bound)."""
    fl = np.asarray(res.final_loss, dtype=np.float64)
    l0 = np.asarray(res.trajectory_loss, dtype=np.float64)[:, 0]
    out = np.zeros(fl.shape[0], dtype=np.int8)
    out[fl > STUCK * np.minimum(l0, np.log(n_classes))] = 1
    out[(np.asarray(res.status) >= 2) | ~np.isfinite(fl)] = 2
    return out


class InitScale(Experiment):
    name = "init-scale"
    claim = ("In a deep network, initial weights far too small or far too large make training fail (vanishing or "
             "exploding gradients: stuck or diverged), while Xavier's scale trains.")  # fmt: skip

    def verdict_from(self, m: dict[str, Any]) -> Verdict:
        """Per activation: Wilson lower bound of the failed (stuck or diverged) share > 0.5 at scale 1e-3 and at
        scale 1e2, and Wilson upper bound < 0.5 at scale 1."""
        per = {}
        for act, r in m["activations"].items():
            n = r["n"]
            f = {float(s): k for s, k in r["failed"].items()}
            per[act] = (wilson(f[1e-3], n)[0] > 0.5 and wilson(f[100.0], n)[0] > 0.5 and wilson(f[1.0], n)[1] < 0.5)
        r = m["activations"]["tanh"]
        k = r["failed"][str(1.0)]
        return Verdict(
            outcome=depends(per, "the activation"),
            criterion=("per activation: Wilson 95% lower bound of the failed share (stuck: final loss > 0.95 x "
                       "min(initial loss, log 2); diverged) > 0.5 at scales 1e-3 and 1e2, upper bound < 0.5 at "
                       "scale 1 (Xavier)"),
            statistic="failed share at scale 1 (tanh)", value=k / r["n"], interval=wilson(k, r["n"]),
            details="; ".join(f"{a}: failed " + ", ".join(f"{float(s):g}: {v}/{r['n']}" for s, v in r["failed"].items())
                              for a, r in m["activations"].items()),
        )  # fmt: skip

    def execute(self, size: str, out: Path, runner: Any) -> ExperimentResult:
        from ..engine.spec import parse_spec
        from ._measure import layer_grad_norms

        n, epochs = SIZES[size]
        measured: dict[str, Any] = {"activations": {}}
        table = []
        fig, ax = figure(3, width=4.8)
        for ai, act in enumerate(ACTIVATIONS):
            base = base_spec(n, epochs, act)
            fs = parse_spec(base).finite_sum
            results = runner.grid(act, base, [{"init.scale_factor": s} for s in SCALES])
            r: dict[str, Any] = {"n": n, "failed": {}, "loss": {}, "grad_first": {}}
            for si, (s, res) in enumerate(zip(SCALES, results, strict=True)):
                f = failed(res, int(fs.data.n_classes))
                gn = layer_grad_norms(fs, res.init_x)  # (n, L)
                fl = np.asarray(res.final_loss, dtype=np.float64)
                r["failed"][str(s)] = int(np.sum(f > 0))
                r["loss"][str(s)] = float(np.median(fl))
                r["grad_first"][str(s)] = float(np.median(gn[:, 0]))
                lo, hi = wilson(int(np.sum(f > 0)), n)
                table.append({"activation": act, "scale": s, "stuck": float(np.mean(f == 1)),
                              "diverged": float(np.mean(f == 2)), "failed low": lo, "failed high": hi,
                              "median final loss": float(np.median(fl)),
                              "median test accuracy": float(np.median(np.asarray(res.metrics["test_accuracy"])[:, -1])),
                              "grad norm layer 1 at init": float(np.median(gn[:, 0])),
                              "grad norm layer 7 at init": float(np.median(gn[:, -1]))})  # fmt: skip
                if s in (1e-3, 1.0, 100.0):
                    ax[0, 2].plot(range(1, gn.shape[1] + 1), np.median(gn, axis=0), "o-" if act == "tanh" else "s--",
                                  color=f"C{si}", label=f"{act}, scale {s:g}")  # fmt: skip
            measured["activations"][act] = r
            fr = np.array([r["failed"][str(s)] / n for s in SCALES])
            w = np.array([wilson(r["failed"][str(s)], n) for s in SCALES])
            ax[0, 0].errorbar(SCALES, fr, yerr=[fr - w[:, 0], w[:, 1] - fr], marker="o", capsize=3, color=f"C{ai}",
                              label=act)  # fmt: skip
            ax[0, 1].plot(SCALES, [r["loss"][str(s)] for s in SCALES], "o-", color=f"C{ai}", label=act)
        ax[0, 0].set_xscale("log")
        ax[0, 0].set_xlabel("weight scale factor (x Xavier normal)")
        ax[0, 0].set_ylabel("share stuck or diverged (Wilson 95%)")
        ax[0, 0].legend(fontsize=7)
        ax[0, 0].set_title("training failures vs init scale", fontsize=9)
        ax[0, 1].set_xscale("log")
        ax[0, 1].set_yscale("log")
        ax[0, 1].set_xlabel("weight scale factor (x Xavier normal)")
        ax[0, 1].set_ylabel(f"median training loss after {epochs} epochs")
        ax[0, 1].legend(fontsize=7)
        ax[0, 1].set_title("loss after T epochs", fontsize=9)
        ax[0, 2].set_yscale("log")
        ax[0, 2].set_xlabel("weight layer (1 = input side)")
        ax[0, 2].set_ylabel("median gradient norm at init (per layer)")
        ax[0, 2].legend(fontsize=6)
        ax[0, 2].set_title("vanishing / exploding gradients", fontsize=9)
        f1 = save(fig, out, "init_scale", f"MLP 2-16x{DEPTH}-2 on moons, SGD lr 0.05 momentum 0.9, batch 32, {epochs} "
                                         f"epochs, {n} particles per scale")  # fmt: skip
        return ExperimentResult(name=self.name, claim=self.claim, size=size, verdict=self.verdict_from(measured),
                                table=table, figures=[f1], specs={}, measured=measured)  # fmt: skip


EXPERIMENT = InitScale

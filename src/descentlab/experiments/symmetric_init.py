"""symmetric-init: zero or constant initialization keeps hidden units identical; random init breaks it.

An MLP 2-8-2 (tanh) on moons, minibatches of 16 (each particle its own
shuffle), initialized with all weights zero, all weights 0.5, or Xavier
uniform. The spread between the 8 hidden units (largest distance of a unit's
incoming weights and bias from the mean unit) is measured at every record. If
the units stay identical the network computes what one hidden unit would: its
final loss is compared with that of a 2-1-2 network given the same constant
init.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._plot import figure, save
from .base import Experiment, ExperimentResult, Verdict, depends
from .stats import bootstrap, wilson

SIZES = {"tiny": (8, 10), "small": (48, 60), "full": (400, 200)}
SCHEMES: dict[str, dict[str, Any]] = {
    "zeros": {"scheme": "zeros", "bias": "zeros"},
    "constant 0.5": {"scheme": "constant", "value": 0.5, "bias": 0.1},
    "xavier_uniform": {"scheme": "xavier_uniform", "bias": "zeros"},
}
SYMMETRIC = 1e-10
BROKEN = 1e-3


def base_spec(n: int, epochs: int, hidden: int) -> dict[str, Any]:
    return {
        "run": {"particles": n, "epochs": epochs, "record_every_epochs": max(1, epochs // 20), "seed": 13},
        "landscape": {"name": "mlp", "hidden": [hidden], "activation": "tanh"},
        "data": {"name": "moons", "samples": 200, "noise": 0.1, "test_fraction": 0.2, "seed": 0},
        "batch": {"size": 16, "shuffle": True},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "init": dict(SCHEMES["zeros"]),
        "stop": {"grad_tol": 0.0, "bound": 1e6},
    }


class SymmetricInit(Experiment):
    name = "symmetric-init"
    claim = ("With zero or constant initialization the hidden units stay identical during training (the network acts "
             "as one unit); random (Xavier) initialization breaks the symmetry.")  # fmt: skip

    def verdict_from(self, m: dict[str, Any]) -> Verdict:
        """Zeros and constant: Wilson lower bound of the share of particles whose unit spread stays below 1e-10 at
        every record >= 0.9; Xavier: Wilson lower bound of the share with final spread above 1e-3 >= 0.9."""
        per = {}
        for k, r in m["schemes"].items():
            good = r["broken"] if k == "xavier_uniform" else r["symmetric"]
            per[k] = wilson(good, r["n"])[0] >= 0.9
        r = m["schemes"]["constant 0.5"]
        lo, hi = wilson(r["symmetric"], r["n"])
        return Verdict(
            outcome=depends(per, "the initialization"),
            criterion=(f"zeros / constant: Wilson lower bound of the share of particles whose hidden-unit spread stays "
                       f"< {SYMMETRIC:g} at every record >= 0.9; Xavier: Wilson lower bound of the share with final "
                       f"spread > {BROKEN:g} >= 0.9"),
            statistic="share of constant-init particles whose units stay identical", value=r["symmetric"] / r["n"],
            interval=(lo, hi),
            details="; ".join(f"{k}: max spread {r['max_spread']:.3g}, symmetric {r['symmetric']}/{r['n']}, broken "
                              f"{r['broken']}/{r['n']}, median final loss {r['loss']:.4g}" for k, r in
                              m["schemes"].items())
            + f"; 2-1-2 network with the constant init: median final loss {m['one_unit_loss']:.4g}",
        )  # fmt: skip

    def execute(self, size: str, out: Path, runner: Any) -> ExperimentResult:
        from ..engine.spec import parse_spec
        from ._measure import unit_spread

        n, epochs = SIZES[size]
        base = base_spec(n, epochs, 8)
        fs = parse_spec(base).finite_sum
        results = runner.grid("schemes", base, [{"init": s} for s in SCHEMES.values()])
        (one,) = runner.grid("one_unit", {**base_spec(n, epochs, 1), "init": dict(SCHEMES["constant 0.5"])})
        measured: dict[str, Any] = {"schemes": {}, "one_unit_loss": float(np.median(one.final_loss))}
        table = []
        fig, ax = figure(2, width=5.4)
        for i, (k, res) in enumerate(zip(SCHEMES, results, strict=True)):
            tx = np.asarray(res.trajectory_x, dtype=np.float64)
            spread = np.stack([unit_spread(fs, tx[:, j, :]) for j in range(tx.shape[1])], axis=1)  # (n, R)
            sym = int(np.sum(np.all(spread < SYMMETRIC, axis=1)))
            broken = int(np.sum(spread[:, -1] > BROKEN))
            loss = np.asarray(res.final_loss, dtype=np.float64)
            acc = np.asarray(res.metrics["test_accuracy"])[:, -1]
            measured["schemes"][k] = {"n": n, "symmetric": sym, "broken": broken, "max_spread": float(spread.max()),
                                      "loss": float(np.median(loss))}  # fmt: skip
            med, lo, hi = bootstrap(loss, np.median)
            table.append({"init": k, "particles": n, "units identical throughout": sym / n,
                          "wilson low": wilson(sym, n)[0], "final spread median": float(np.median(spread[:, -1])),
                          "median final loss": med, "loss low": lo, "loss high": hi,
                          "median test accuracy": float(np.median(acc))})  # fmt: skip
            ep = np.asarray(res.record_steps) / fs.steps_for_epochs(1)
            q = np.percentile(np.maximum(spread, 1e-17), [10, 50, 90], axis=0)
            ax[0, 0].plot(ep, q[1], color=f"C{i}", label=f"{k} (median, 10-90%)")
            ax[0, 0].fill_between(ep, q[0], q[2], color=f"C{i}", alpha=0.2)
            tl = np.asarray(res.trajectory_loss, dtype=np.float64)
            ax[0, 1].plot(ep, np.median(tl, axis=0), color=f"C{i}", label=f"{k}, 8 hidden units")
        tl = np.asarray(one.trajectory_loss, dtype=np.float64)
        ep = np.asarray(one.record_steps) / parse_spec(base_spec(n, epochs, 1)).finite_sum.steps_for_epochs(1)
        ax[0, 1].plot(ep, np.median(tl, axis=0), "k--", label="constant 0.5, 1 hidden unit")
        table.append({"init": "constant 0.5, 1 hidden unit", "particles": n, "units identical throughout": None,
                      "wilson low": None, "final spread median": None,
                      "median final loss": float(np.median(one.final_loss)), "loss low": None, "loss high": None,
                      "median test accuracy": float(np.median(np.asarray(one.metrics["test_accuracy"])[:, -1]))})
        ax[0, 0].set_yscale("log")
        ax[0, 0].set_ylim(3e-18, None)
        ax[0, 0].set_xlabel("epoch")
        ax[0, 0].set_ylabel("hidden-unit spread (param. units; 1e-17 = 0)")
        ax[0, 0].legend(fontsize=7)
        ax[0, 0].set_title("hidden-unit symmetry during training", fontsize=9)
        ax[0, 1].set_yscale("log")
        ax[0, 1].set_xlabel("epoch")
        ax[0, 1].set_ylabel("median training loss (cross-entropy)")
        ax[0, 1].legend(fontsize=7)
        ax[0, 1].set_title("symmetric nets train like one unit", fontsize=9)
        f1 = save(fig, out, "symmetry", f"MLP 2-8-2 tanh on moons, SGD lr 0.1 momentum 0.9, batch 16, {epochs} epochs, "
                                       f"{n} particles per init")  # fmt: skip
        return ExperimentResult(name=self.name, claim=self.claim, size=size, verdict=self.verdict_from(measured),
                                table=table, figures=[f1], specs={}, measured=measured)  # fmt: skip


EXPERIMENT = SymmetricInit

"""momentum-then-adam: switching optimizers during training vs either one alone.

An MLP (2-32-2, tanh) on spirals with minibatches of 32 is trained from the
same initializations (same seed) by SGD with momentum alone, Adam alone, and
momentum for the first k epochs then Adam (the engine's optimizer switch, whose
phases are in updates: k epochs are converted to updates here). Measured per
particle: final training loss, its spread, and test accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._plot import figure, save
from .base import Experiment, ExperimentResult, Verdict, depends
from .stats import bootstrap, bootstrap_diff

SIZES = {"tiny": (12, 16), "small": (64, 100), "full": (512, 300)}
MOMENTUM = {"name": "sgd", "lr": 0.2, "momentum": 0.9}
ADAM = {"name": "adam", "lr": 0.02}
SWITCH_FRACTIONS = (0.25, 0.5)


def base_spec(n: int, epochs: int) -> dict[str, Any]:
    return {
        "run": {"particles": n, "epochs": epochs, "record_every_epochs": max(1, epochs // 25), "seed": 21},
        "landscape": {"name": "mlp", "hidden": [32], "activation": "tanh"},
        "data": {"name": "spirals", "samples": 300, "noise": 0.1, "test_fraction": 0.3, "seed": 2},
        "batch": {"size": 32, "shuffle": True},
        "optimizer": dict(MOMENTUM),
        "init": {"scheme": "xavier_uniform", "bias": "zeros"},
        "stop": {"grad_tol": 0.0, "bound": 1e6},
    }


class MomentumThenAdam(Experiment):
    name = "momentum-then-adam"
    claim = ("Training with SGD+momentum for the first k epochs and then Adam ends at a lower training loss than "
             "either optimizer alone.")  # fmt: skip

    def verdict_from(self, m: dict[str, Any]) -> Verdict:
        """Per switch epoch k: the bootstrap 95% upper bound of median final loss (switch at k) minus the lower of
        the two single optimizers' medians is < 0."""
        per = {f"k = {k}": r["diff_high"] < 0 for k, r in m["switch"].items()}
        k0, r0 = min(m["switch"].items(), key=lambda kv: kv[1]["diff"])
        return Verdict(
            outcome=depends(per, "the switch epoch"),
            criterion=("per switch epoch k: bootstrap 95% upper bound of [median final training loss of the switch - "
                       "min(median of momentum alone, median of Adam alone)] < 0"),
            statistic=f"median loss difference, switch at k = {k0} minus best single ({m['best_single']})",
            value=r0["diff"], interval=(r0["diff_low"], r0["diff_high"]),
            details="; ".join(f"k = {k}: median loss {r['median']:.4g}, difference {r['diff']:.3g} "
                              f"[{r['diff_low']:.3g}, {r['diff_high']:.3g}], test accuracy {r['test_acc']:.3f}"
                              for k, r in m["switch"].items())
            + f"; momentum alone {m['single']['momentum']['median']:.4g} (test acc "
              f"{m['single']['momentum']['test_acc']:.3f}), Adam alone {m['single']['adam']['median']:.4g} "
              f"(test acc {m['single']['adam']['test_acc']:.3f})",
        )  # fmt: skip

    def execute(self, size: str, out: Path, runner: Any) -> ExperimentResult:
        from ..engine.spec import parse_spec

        n, epochs = SIZES[size]
        base = base_spec(n, epochs)
        per_epoch = parse_spec(base).finite_sum.steps_for_epochs(1)
        ks = sorted({max(1, round(f * epochs)) for f in SWITCH_FRACTIONS})
        variants: dict[str, dict[str, Any]] = {
            "momentum": {"optimizer": dict(MOMENTUM)},
            "adam": {"optimizer": dict(ADAM)},
        }
        for k in ks:
            variants[f"switch@{k}"] = {"optimizer": {"name": "switch", "phases": [
                {**MOMENTUM, "steps": k * per_epoch}, dict(ADAM)]}}  # fmt: skip
        results = dict(zip(variants, runner.grid("variants", base, list(variants.values())), strict=True))
        loss = {k: np.asarray(r.final_loss, dtype=np.float64) for k, r in results.items()}
        acc = {k: np.asarray(r.metrics["test_accuracy"], dtype=np.float64)[:, -1] for k, r in results.items()}
        single = {k: {"median": float(np.median(loss[k])), "test_acc": float(np.median(acc[k]))}
                  for k in ("momentum", "adam")}  # fmt: skip
        best_single = min(single, key=lambda k: single[k]["median"])
        measured: dict[str, Any] = {"single": single, "best_single": best_single, "switch": {},
                                    "updates_per_epoch": per_epoch}  # fmt: skip
        for k in ks:
            d, lo, hi = bootstrap_diff(loss[f"switch@{k}"], loss[best_single], np.median)
            measured["switch"][str(k)] = {"median": float(np.median(loss[f"switch@{k}"])), "diff": d, "diff_low": lo,
                                          "diff_high": hi, "test_acc": float(np.median(acc[f"switch@{k}"]))}
        table = []
        for k in variants:
            med, lo, hi = bootstrap(loss[k], np.median)
            amed, alo, ahi = bootstrap(acc[k], np.median)
            table.append({"variant": k, "median final train loss": med, "low": lo, "high": hi,
                          "IQR of final loss": float(np.subtract(*np.percentile(loss[k], [75, 25]))),
                          "median test accuracy": amed, "acc low": alo, "acc high": ahi})  # fmt: skip
        fig, ax = figure(3, width=4.8)
        for i, (k, r) in enumerate(results.items()):
            tl = np.asarray(r.trajectory_loss, dtype=np.float64)
            ep = np.asarray(r.record_steps) / per_epoch
            q = np.nanpercentile(tl, [25, 50, 75], axis=0)
            ax[0, 0].plot(ep, q[1], color=f"C{i}", label=k)
            ax[0, 0].fill_between(ep, q[0], q[2], color=f"C{i}", alpha=0.2)
        for k in ks:
            ax[0, 0].axvline(k, color="grey", ls=":", lw=0.8)
        ax[0, 0].set_yscale("log")
        ax[0, 0].set_xlabel("epoch (dotted: switch epochs)")
        ax[0, 0].set_ylabel("training loss (cross-entropy), median and IQR")
        ax[0, 0].legend(fontsize=7)
        ax[0, 0].set_title("loss curves", fontsize=9)
        ax[0, 1].boxplot([np.log10(loss[k]) for k in variants], widths=0.6)
        ax[0, 1].set_xticks(range(1, len(variants) + 1), list(variants), fontsize=7)
        ax[0, 1].set_ylabel("log10 final training loss")
        ax[0, 1].set_xlabel("optimizer (switch@k: momentum for k epochs, then Adam)")
        ax[0, 1].set_title("final loss distribution", fontsize=9)
        ax[0, 2].boxplot([acc[k] for k in variants], widths=0.6)
        ax[0, 2].set_xticks(range(1, len(variants) + 1), list(variants), fontsize=7)
        ax[0, 2].set_ylabel("test accuracy (fraction correct)")
        ax[0, 2].set_xlabel("optimizer")
        ax[0, 2].set_title("test accuracy", fontsize=9)
        f1 = save(fig, out, "switch", f"MLP 2-32-2 tanh on spirals (300, 30% test), batch 32, {epochs} epochs, {n} "
                                     f"inits; momentum lr {MOMENTUM['lr']} (0.9), Adam lr {ADAM['lr']}")  # fmt: skip
        return ExperimentResult(name=self.name, claim=self.claim, size=size, verdict=self.verdict_from(measured),
                                table=table, figures=[f1], specs={}, measured=measured,
                                notes=["The engine's optimizer switch counts phases in updates; the switch epochs are "
                                       f"converted here ({per_epoch} updates per epoch)."])  # fmt: skip


EXPERIMENT = MomentumThenAdam

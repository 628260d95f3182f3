"""shuffle: reshuffling the training set every epoch vs one fixed order of minibatches.

An MLP 2-16-2 (tanh) on moons (300 samples, 25% test), minibatches of 16, SGD
(lr 0.1, momentum 0.9). The training set is stored in a random order and in an
order sorted by class (all of class 0, then all of class 1); each is trained
with a fresh permutation per epoch (and particle) and with the stored order
every epoch, at two learning rates. Per particle: final training loss, its noise over the last
quarter of the records, and test accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._plot import figure, save
from .base import Experiment, ExperimentResult, Verdict, depends
from .stats import bootstrap, bootstrap_diff

SIZES = {"tiny": (8, 6), "small": (32, 40), "full": (256, 100)}
LRS = (0.1, 0.5)


def write_data(folder: Path) -> dict[str, Path]:
    """The moons data in a random and in a class-sorted order, as .npz files in ``folder``."""
    from ..data.datasets import load_dataset

    d = load_dataset({"name": "moons", "samples": 300, "noise": 0.2, "test_fraction": 0.25, "seed": 0})
    rng = np.random.default_rng(0)
    perm = rng.permutation(d.x_train.shape[0])
    order = {"random order": perm, "sorted by class": np.argsort(d.y_train, kind="stable")}
    out = {}
    for name, idx in order.items():
        path = folder / f"moons_{name.split()[0]}.npz"
        np.savez(path, x=d.x_train[idx], y=d.y_train[idx], x_test=d.x_test, y_test=d.y_test)
        out[name] = path
    return out


class Shuffle(Experiment):
    name = "shuffle"
    claim = ("Reshuffling the data every epoch ends at a lower, less noisy training loss and a better test accuracy "
             "than one fixed order, most of all when the data are sorted by class.")  # fmt: skip

    def verdict_from(self, m: dict[str, Any]) -> Verdict:
        """Per data order and lr: the bootstrap 95% lower bound of median final loss (fixed order - reshuffled)
        > 0."""
        per = {k: r["loss_diff"][1] > 0 for k, r in m["orders"].items()}
        key = next(k for k in m["orders"] if k.startswith("sorted by class"))
        r = m["orders"][key]
        return Verdict(
            outcome=depends(per, "the stored order of the data and the learning rate"),
            criterion=("per stored order and learning rate: bootstrap 95% lower bound of [median final training "
                       "loss with the fixed "
                       "order - with reshuffling] > 0"),
            statistic=f"median final loss, fixed - reshuffled ({key})", value=r["loss_diff"][0],
            interval=(r["loss_diff"][1], r["loss_diff"][2]),
            details="; ".join(f"{k}: loss difference {v['loss_diff'][0]:.3g} [{v['loss_diff'][1]:.3g}, "
                              f"{v['loss_diff'][2]:.3g}], noise fixed {v['noise']['fixed']:.3g} vs reshuffled "
                              f"{v['noise']['reshuffled']:.3g}, test accuracy fixed {v['acc']['fixed']:.3f} vs "
                              f"reshuffled {v['acc']['reshuffled']:.3f}" for k, v in m["orders"].items()),
        )  # fmt: skip

    def execute(self, size: str, out: Path, runner: Any) -> ExperimentResult:
        from ._measure import tail_noise

        n, epochs = SIZES[size]
        files = write_data(out)
        base = {
            "run": {"particles": n, "epochs": epochs, "record_every_epochs": 1, "seed": 29},
            "landscape": {"name": "mlp", "hidden": [16], "activation": "tanh"},
            "data": {"file": str(files["random order"].resolve())},
            "batch": {"size": 16, "shuffle": True},
            "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
            "init": {"scheme": "xavier_uniform", "bias": "zeros"},
            "stop": {"grad_tol": 0.0, "bound": 1e6},
        }
        combos = [(f"{o}, lr {lr:g}", o, lr, s) for o in files for lr in LRS for s in (True, False)]
        results = runner.grid("orders", base, [{"data.file": str(files[o].resolve()), "batch.shuffle": s,
                                                "optimizer.lr": lr} for _, o, lr, s in combos])  # fmt: skip
        measured: dict[str, Any] = {"orders": {}}
        table = []
        fig, ax = figure(3, width=5.6)
        loss: dict[tuple[str, bool], np.ndarray] = {}
        acc: dict[tuple[str, bool], np.ndarray] = {}
        for i, ((o, _, _, s), res) in enumerate(zip(combos, results, strict=True)):
            fl = np.asarray(res.final_loss, dtype=np.float64)
            loss[(o, s)] = fl
            acc[(o, s)] = np.asarray(res.metrics["test_accuracy"], dtype=np.float64)[:, -1]
            noise = tail_noise(res.trajectory_loss)
            med, lo, hi = bootstrap(fl, np.median)
            label = f"{o}, {'reshuffled' if s else 'fixed order'}"
            table.append({"data, lr": o, "batches": "reshuffled every epoch" if s else "fixed order",
                          "median final loss": med, "low": lo, "high": hi, "median loss noise": float(np.median(noise)),
                          "median test accuracy": float(np.median(acc[(o, s)]))})  # fmt: skip
            measured["orders"].setdefault(o, {"noise": {}, "acc": {}})
            measured["orders"][o]["noise"]["reshuffled" if s else "fixed"] = float(np.median(noise))
            measured["orders"][o]["acc"]["reshuffled" if s else "fixed"] = float(np.median(acc[(o, s)]))
            tl = np.asarray(res.trajectory_loss, dtype=np.float64)
            ep = np.arange(tl.shape[1])
            ax[0, 0].plot(ep, np.median(tl, axis=0), "-" if s else "--", color=f"C{i // 2}", label=label)
        for o in {c[0] for c in combos}:
            measured["orders"][o]["loss_diff"] = list(bootstrap_diff(loss[(o, False)], loss[(o, True)], np.median))
        ax[0, 0].set_yscale("log")
        ax[0, 0].set_xlabel("epoch")
        ax[0, 0].set_ylabel("median training loss (cross-entropy)")
        ax[0, 0].legend(fontsize=7)
        ax[0, 0].set_title("training loss", fontsize=9)
        labels = [f"{o.split()[0][:4]} {lr:g}\n{'shuffle' if s else 'fixed'}" for _, o, lr, s in combos]
        keys = [(c[0], c[3]) for c in combos]
        ax[0, 1].boxplot([np.log10(loss[c]) for c in keys], widths=0.6)
        ax[0, 1].set_xticks(range(1, len(combos) + 1), labels, fontsize=6)
        ax[0, 1].set_ylabel("log10 final training loss")
        ax[0, 1].set_xlabel("stored order / batches")
        ax[0, 1].set_title("final loss", fontsize=9)
        ax[0, 2].boxplot([acc[c] for c in keys], widths=0.6)
        ax[0, 2].set_xticks(range(1, len(combos) + 1), labels, fontsize=6)
        ax[0, 2].set_ylabel("test accuracy (fraction correct)")
        ax[0, 2].set_xlabel("stored order / batches")
        ax[0, 2].set_title("test accuracy", fontsize=9)
        f1 = save(fig, out, "shuffle", f"MLP 2-16-2 tanh on moons (300, noise 0.2, 25% test), batch 16, SGD lr "
                                      f"{' and '.join(f'{lr:g}' for lr in LRS)}, momentum 0.9, "
                                      f"{epochs} epochs, {n} particles per setting")  # fmt: skip
        return ExperimentResult(name=self.name, claim=self.claim, size=size, verdict=self.verdict_from(measured),
                                table=table, figures=[f1], specs={}, measured=measured,
                                notes=["The data files (random and class-sorted order) are written next to "
                                       "the results; the specs name them by absolute path."])  # fmt: skip


EXPERIMENT = Shuffle

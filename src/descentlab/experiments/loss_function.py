"""loss-function: mean squared error vs cross-entropy for a classifier, from the same initializations.

An MLP 2-16-2 (tanh) on moons is trained by SGD (batch 32) once with softmax
cross-entropy on the class labels and once with MSE on one-hot targets (a
regression data file: the engine refuses MSE on class labels). Both have the
same parameter layout, so the same seed gives the same initial points. Per
particle: train accuracy at every record (argmax of the outputs), epochs to 95%
train accuracy, plateau length (epochs with accuracy below 60%); and the
loss of both along the straight line from an initial point to the end point of
its cross-entropy run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._plot import figure, save
from .base import Experiment, ExperimentResult, Verdict
from .stats import bootstrap, bootstrap_diff

SIZES = {"tiny": (6, 6), "small": (32, 60), "full": (256, 150)}
ACC_TARGET = 0.95
PLATEAU_ACC = 0.6


def write_data(folder: Path) -> dict[str, Path]:
    from ..data.datasets import load_dataset

    d = load_dataset({"name": "moons", "samples": 300, "noise": 0.1, "test_fraction": 0.25, "seed": 0})
    ce = folder / "moons_labels.npz"
    np.savez(ce, x=d.x_train, y=d.y_train, x_test=d.x_test, y_test=d.y_test)
    mse = folder / "moons_onehot.npz"
    np.savez(mse, x=d.x_train, y=np.eye(2)[d.y_train], x_test=d.x_test, y_test=np.eye(2)[d.y_test])
    return {"cross_entropy": ce, "mse": mse}


class LossFunction(Experiment):
    name = "loss-function"
    claim = ("For classification, cross-entropy trains faster than mean squared error from the same "
             "initializations (shorter plateaus, fewer epochs to a target accuracy).")  # fmt: skip

    def verdict_from(self, m: dict[str, Any]) -> Verdict:
        """Bootstrap 95% lower bound of median epochs to 95% train accuracy (MSE - cross-entropy) > 0 (never:
        twice the run)."""
        d, lo, hi = m["epochs_diff"]
        return Verdict(
            outcome="supported" if lo > 0 else "not supported",
            criterion=(f"bootstrap 95% lower bound of [median epochs to {ACC_TARGET:.0%} train accuracy with MSE - "
                       "with cross-entropy] > 0 (never reached: 2x the run)"),
            statistic="median epochs to target accuracy, MSE - cross-entropy", value=d, interval=(lo, hi),
            details=(f"median epochs: cross-entropy {m['median_epochs']['cross_entropy']:.3g}, MSE "
                     f"{m['median_epochs']['mse']:.3g}; median plateau (accuracy < {PLATEAU_ACC}): cross-entropy "
                     f"{m['plateau']['cross_entropy']:.3g}, MSE {m['plateau']['mse']:.3g} epochs; final test accuracy "
                     f"cross-entropy {m['test_acc']['cross_entropy']:.3f}, MSE {m['test_acc']['mse']:.3f}"),
        )  # fmt: skip

    def execute(self, size: str, out: Path, runner: Any) -> ExperimentResult:
        from ..engine.spec import parse_spec
        from ..models.reference import accuracy
        from ._measure import problem

        n, epochs = SIZES[size]
        files = write_data(out)
        base = {
            "run": {"particles": n, "epochs": epochs, "record_every_epochs": 1, "seed": 37},
            "landscape": {"name": "mlp", "hidden": [16], "activation": "tanh", "loss": "cross_entropy"},
            "data": {"file": str(files["cross_entropy"].resolve()), "standardize": False},
            "batch": {"size": 32, "shuffle": True},
            "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
            "init": {"scheme": "xavier_uniform", "bias": "zeros"},
            "stop": {"grad_tol": 0.0, "bound": 1e6},
        }
        mse_pt = {"landscape.loss": "mse", "data.file": str(files["mse"].resolve()), "data.task": "regression"}
        res_ce, res_mse = runner.grid("losses", base, [{}, mse_pt])
        fs_ce = parse_spec(base).finite_sum
        x_tr, y_tr = fs_ce.data.x_train, fs_ce.data.y_train
        x_te, y_te = fs_ce.data.x_test, fs_ce.data.y_test
        if not np.allclose(res_ce.init_x, res_mse.init_x):
            raise AssertionError("the two runs should start from the same points")
        epochs_to: dict[str, np.ndarray] = {}
        plateau: dict[str, np.ndarray] = {}
        test_acc: dict[str, np.ndarray] = {}
        curves: dict[str, np.ndarray] = {}
        for k, res in (("cross_entropy", res_ce), ("mse", res_mse)):
            tx = np.asarray(res.trajectory_x, dtype=np.float64)
            acc = np.stack([accuracy(fs_ce.model, tx[:, j], x_tr, y_tr) for j in range(tx.shape[1])], axis=1)
            curves[k] = acc
            hit = acc >= ACC_TARGET
            epochs_to[k] = np.where(hit.any(axis=1), np.argmax(hit, axis=1).astype(np.float64), 2.0 * epochs)
            plateau[k] = np.sum(acc < PLATEAU_ACC, axis=1).astype(np.float64)
            test_acc[k] = accuracy(fs_ce.model, np.asarray(res.final_x), x_te, y_te)
        measured = {
            "epochs_diff": list(bootstrap_diff(epochs_to["mse"], epochs_to["cross_entropy"], np.median)),
            "median_epochs": {k: float(np.median(v)) for k, v in epochs_to.items()},
            "plateau": {k: float(np.median(v)) for k, v in plateau.items()},
            "test_acc": {k: float(np.median(v)) for k, v in test_acc.items()},
        }
        table = []
        for k in ("cross_entropy", "mse"):
            med, lo, hi = bootstrap(epochs_to[k], np.median)
            table.append({"loss": k, "median epochs to 95% train acc": med, "low": lo, "high": hi,
                          "reached": float(np.mean(epochs_to[k] < 2 * epochs)),
                          "median plateau epochs (acc < 0.6)": float(np.median(plateau[k])),
                          "median final train acc": float(np.median(curves[k][:, -1])),
                          "median test acc": float(np.median(test_acc[k]))})  # fmt: skip
        # loss along the line from an init to the cross-entropy end point, for both losses
        pr_ce = problem(base)
        pr_mse = problem({**base, "landscape": {**base["landscape"], "loss": "mse"},
                          "data": {"file": str(files["mse"].resolve()), "standardize": False, "task": "regression"}})
        alpha = np.linspace(-0.5, 1.5, 81)
        fig, ax = figure(3, width=4.8)
        for k, ls in (("cross_entropy", "-"), ("mse", "--")):
            q = np.percentile(curves[k], [25, 50, 75], axis=0)
            ep = np.arange(q.shape[1])
            ax[0, 0].plot(ep, q[1], ls, label=f"{k} (median, IQR)")
            ax[0, 0].fill_between(ep, q[0], q[2], alpha=0.2)
            s = np.sort(epochs_to[k])
            ax[0, 1].step(s, np.arange(1, s.size + 1) / s.size, where="post", label=k)
        for i in range(min(3, n)):
            x0, x1 = res_ce.init_x[i], res_ce.final_x[i]
            line = x0[None, :] + alpha[:, None] * (x1 - x0)[None, :]
            for pr, k, ls in ((pr_ce, "cross_entropy", "-"), (pr_mse, "mse", "--")):
                v = pr.value(line)
                ax[0, 2].plot(alpha, v / v[np.argmin(np.abs(alpha))], ls, color=f"C{i}",
                              label=f"{k}, particle {i}")  # fmt: skip
        ax[0, 0].axhline(ACC_TARGET, color="k", lw=0.6, ls=":")
        ax[0, 0].set_xlabel("epoch")
        ax[0, 0].set_ylabel("train accuracy (argmax of outputs)")
        ax[0, 0].legend(fontsize=7)
        ax[0, 0].set_title("accuracy curves (plateaus)", fontsize=9)
        ax[0, 1].set_xlabel(f"epochs to {ACC_TARGET:.0%} train accuracy ({2 * epochs}: never)")
        ax[0, 1].set_ylabel("share of particles (ECDF)")
        ax[0, 1].legend(fontsize=7)
        ax[0, 1].set_title("epochs to target", fontsize=9)
        ax[0, 2].set_yscale("log")
        ax[0, 2].set_xlabel("alpha: x = init + alpha (CE end point - init)")
        ax[0, 2].set_ylabel("loss / loss at init")
        ax[0, 2].legend(fontsize=6)
        ax[0, 2].set_title("loss along the line init -> solution", fontsize=9)
        f1 = save(fig, out, "loss_function", f"MLP 2-16-2 tanh on moons (300, noise 0.1), SGD lr 0.05 momentum 0.9, "
                                            f"batch 32, {epochs} epochs, {n} shared Xavier inits")  # fmt: skip
        return ExperimentResult(name=self.name, claim=self.claim, size=size, verdict=self.verdict_from(measured),
                                table=table, figures=[f1], specs={}, measured=measured,
                                notes=["MSE runs on one-hot targets from a data file marked 'regression': the engine "
                                       "refuses MSE on class labels for MLPs."])  # fmt: skip


EXPERIMENT = LossFunction

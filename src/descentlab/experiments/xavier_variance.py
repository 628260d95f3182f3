"""xavier-variance: Xavier initialization keeps activation variance steady across layers (Glorot & Bengio 2010).

A deep tanh MLP (16-32x5-4) on Gaussian blobs, initialized with the standard
U(-1/sqrt(n), 1/sqrt(n)) (torch's default), Xavier uniform, He normal, a too
small N(0, 0.01^2) and a too large N(0, 1) scheme. Per layer: activation mean
and variance at initialization, at mid-training and at the end (NumPy reference
forward pass over the training set), and the test accuracy by scheme.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._plot import figure, save
from .base import Experiment, ExperimentResult, Verdict, depends
from .stats import bootstrap, bootstrap_diff

SIZES = {"tiny": (6, 4), "small": (24, 30), "full": (64, 60)}
SCHEMES: dict[str, dict[str, Any]] = {
    "standard U(-1/sqrt n, 1/sqrt n)": {"scheme": "torch_default", "bias": "zeros"},
    "xavier uniform": {"scheme": "xavier_uniform", "bias": "zeros"},
    "he normal": {"scheme": "he_normal", "bias": "zeros"},
    "too small N(0, 0.01)": {"scheme": "normal", "std": 0.01, "bias": "zeros"},
    "too large N(0, 1)": {"scheme": "normal", "std": 1.0, "bias": "zeros"},
}
DEPTH = 5
STATS_PARTICLES = 12


def base_spec(n: int, epochs: int) -> dict[str, Any]:
    return {
        "run": {"particles": n, "epochs": epochs, "record_every_epochs": max(1, epochs // 2), "seed": 19},
        "landscape": {"name": "mlp", "hidden": [32] * DEPTH, "activation": "tanh"},
        "data": {"name": "blobs", "samples": 400, "classes": 4, "features": 16, "std": 4.0, "test_fraction": 0.25,
                 "seed": 0, "standardize": True},
        "batch": {"size": 32, "shuffle": True},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "init": dict(SCHEMES["xavier uniform"]),
        "stop": {"grad_tol": 0.0, "bound": 1e8},
    }  # fmt: skip


def depth_decay(var: np.ndarray) -> np.ndarray:
    """(n,) |log10(variance of the last hidden layer / variance of the first)| per particle (0: preserved)."""
    v = np.maximum(np.asarray(var, dtype=np.float64), 1e-300)
    return np.abs(np.log10(v[:, DEPTH - 1] / v[:, 0]))


class XavierVariance(Experiment):
    name = "xavier-variance"
    claim = ("Xavier initialization keeps the activation variance roughly constant across the layers of a deep tanh "
             "network, where the standard U(-1/sqrt(n), 1/sqrt(n)) lets it shrink with depth, too small a scale "
             "makes it vanish and too large saturates the units.")  # fmt: skip

    def verdict_from(self, m: dict[str, Any]) -> Verdict:
        """Bootstrap 95% interval of median |log10 var(last hidden) / var(first hidden)| at init: standard minus
        Xavier > 0; too small: its median decay > 1 decade; too large: median of the mean activation variance over
        the hidden layers > 0.8 (tanh outputs near +-1: saturated)."""
        per = {
            "Xavier preserves better than standard": m["diff_low"] > 0,
            "too small vanishes": m["decay"]["too small N(0, 0.01)"] > 1.0,
            "too large saturates": m["hidden_var"]["too large N(0, 1)"] > 0.8,
        }
        return Verdict(
            outcome=depends(per, "the scheme compared"),
            criterion=("at init, per particle d = |log10(var last hidden / var first hidden)|: bootstrap 95% lower "
                       "bound of median d (standard) - median d (Xavier) > 0; too small: median d > 1; too large: "
                       "median over particles of the mean variance of the hidden layers' tanh outputs > 0.8 "
                       "(saturated)"),
            statistic="median depth decay (decades), standard - Xavier", value=m["diff"],
            interval=(m["diff_low"], m["diff_high"]),
            details="; ".join(f"{k}: decay {m['decay'][k]:.2f} decades, mean hidden variance {m['hidden_var'][k]:.3g}, "
                              f"test accuracy {m['test_acc'][k]:.3f}" for k in m["decay"]),
        )  # fmt: skip

    def execute(self, size: str, out: Path, runner: Any) -> ExperimentResult:
        from ..engine.spec import parse_spec
        from ._measure import layer_stats

        n, epochs = SIZES[size]
        base = base_spec(n, epochs)
        fs = parse_spec(base).finite_sum
        results = runner.grid("schemes", base, [{"init": s} for s in SCHEMES.values()])
        measured: dict[str, Any] = {"decay": {}, "hidden_var": {}, "test_acc": {}}
        decays = {}
        table = []
        fig, ax = figure(3, width=4.8)
        k_stats = min(STATS_PARTICLES, n)
        for i, (name, res) in enumerate(zip(SCHEMES, results, strict=True)):
            tx = np.asarray(res.trajectory_x, dtype=np.float64)
            at = {"init": tx[:k_stats, 0], "middle": tx[:k_stats, tx.shape[1] // 2], "end": tx[:k_stats, -1]}
            st = {w: layer_stats(fs, p) for w, p in at.items()}
            var0 = layer_stats(fs, res.init_x)["activation_var"]  # every particle, for the verdict
            d = depth_decay(var0)
            decays[name] = d
            acc = np.asarray(res.metrics["test_accuracy"], dtype=np.float64)[:, -1]
            measured["decay"][name] = float(np.median(d))
            measured["hidden_var"][name] = float(np.median(np.mean(var0[:, :DEPTH], axis=1)))
            measured["test_acc"][name] = float(np.median(acc))
            amed, alo, ahi = bootstrap(acc, np.median)
            row: dict[str, Any] = {"init": name}
            for j in range(DEPTH):
                row[f"var L{j + 1} init"] = float(np.median(var0[:, j]))
            row["var last hidden end"] = float(np.median(st["end"]["activation_var"][:, DEPTH - 1]))
            row.update({"depth decay (decades)": float(np.median(d)), "test accuracy": amed, "acc low": alo,
                        "acc high": ahi})  # fmt: skip
            table.append(row)
            layers = np.arange(1, DEPTH + 1)
            for w, style in (("init", "o-"), ("end", "s:")):
                v = np.median(st[w]["activation_var"][:, :DEPTH], axis=0)
                ax[0, 0 if w == "init" else 1].plot(layers, v, style, color=f"C{i}", label=name)
            ax[0, 2].bar(i, np.median(acc), yerr=[[np.median(acc) - alo], [ahi - np.median(acc)]], color=f"C{i}",
                         capsize=4, label=name)  # fmt: skip
        d, lo, hi = bootstrap_diff(decays["standard U(-1/sqrt n, 1/sqrt n)"], decays["xavier uniform"], np.median)
        measured.update({"diff": d, "diff_low": lo, "diff_high": hi})
        for j, w in enumerate(("initialization", f"end of training ({epochs} epochs)")):
            ax[0, j].set_yscale("log")
            ax[0, j].set_xlabel("hidden layer (tanh), 1 = input side")
            ax[0, j].set_ylabel("activation variance (median over particles)")
            ax[0, j].set_xticks(range(1, DEPTH + 1))
            ax[0, j].legend(fontsize=6)
            ax[0, j].set_title(f"activation variance per layer at {w}", fontsize=9)
        ax[0, 2].set_xticks(range(len(SCHEMES)), ["standard", "xavier", "he", "too small", "too large"], fontsize=7)
        ax[0, 2].set_ylabel("test accuracy (median, bootstrap 95%)")
        ax[0, 2].set_xlabel("initialization")
        ax[0, 2].set_ylim(0, 1.05)
        ax[0, 2].set_title("test accuracy by scheme", fontsize=9)
        f1 = save(fig, out, "variance", f"MLP 16-32x{DEPTH}-4 tanh on blobs (400, 4 classes, std 4), SGD lr "
                                       f"0.05 momentum 0.9, batch 32, {epochs} epochs, {n} particles per "
                                       "scheme")  # fmt: skip
        return ExperimentResult(name=self.name, claim=self.claim, size=size, verdict=self.verdict_from(measured),
                                table=table, figures=[f1], specs={}, measured=measured)  # fmt: skip


EXPERIMENT = XavierVariance

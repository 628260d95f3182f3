"""init-distance: the farther the start from the minimum, the more steps to converge.

Starts are placed at known distances from the minimum (log-uniform radii,
random directions) of an ill-conditioned quadratic (minimum at 0) and of
Rosenbrock's valley (minimum at (1, 1)); gradient descent, heavy-ball momentum
and Adam run from each. Per optimizer: the rank correlation (Spearman) between
the distance and the steps to a loss target, with a bootstrap interval over
particles.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from ._plot import figure, save
from .base import Experiment, ExperimentResult, Verdict, depends
from .stats import spearman

SIZES = {"tiny": (48, 1500), "small": (300, 4000), "full": (3000, 8000)}
TARGET = 1e-6
LANDSCAPES: dict[str, dict[str, Any]] = {
    "quadratic": {"landscape": {"name": "quadratic", "dim": 2, "condition": 10.0, "rotation": 0.4},
                  "minimum": [0.0, 0.0], "radii": (1e-2, 1e2),
                  "optimizers": {"gd": {"name": "sgd", "lr": 0.1}, "momentum": {"name": "momentum", "lr": 0.02},
                                 "adam": {"name": "adam", "lr": 0.05}}},
    "rosenbrock": {"landscape": {"name": "rosenbrock", "dim": 2}, "minimum": [1.0, 1.0], "radii": (1e-2, 1.5),
                   "steps_factor": 5,
                   "optimizers": {"gd": {"name": "sgd", "lr": 1.5e-3}, "momentum": {"name": "momentum", "lr": 1.5e-4},
                                  "adam": {"name": "adam", "lr": 0.01}}},
}  # fmt: skip


def starts(n: int, minimum: list[float], radii: tuple[float, float], seed: int = 0) -> np.ndarray:
    """(n, 2) starts at log-uniform distances in ``radii`` from ``minimum``, uniform directions."""
    rng = np.random.default_rng(seed)
    r = np.exp(rng.uniform(np.log(radii[0]), np.log(radii[1]), n))
    a = rng.uniform(0.0, 2 * np.pi, n)
    return np.asarray(minimum) + r[:, None] * np.stack([np.cos(a), np.sin(a)], axis=1)


class InitDistance(Experiment):
    name = "init-distance"
    claim = "The farther the initialization is from the minimum, the more steps the optimizer needs to converge."

    def verdict_from(self, m: dict[str, Any]) -> Verdict:
        """Per landscape x optimizer: the bootstrap lower bound of Spearman's rho(distance, steps to target)
        over the particles that did not diverge (not reached: +inf) is > 0, and at least half reached it."""
        per: dict[str, bool] = {}
        weakest = None
        for key, r in m["pairs"].items():
            ok = r["reached"] >= 0.5 * r["particles"] and r["rho_low"] > 0
            per[key] = bool(ok)
            if weakest is None or r["rho_low"] < weakest[1]:
                weakest = (key, r["rho_low"], r["rho"], r["rho_high"])
        assert weakest is not None
        return Verdict(
            outcome=depends(per, "the optimizer and landscape"),
            criterion=(f"every landscape x optimizer: >= 50% of particles reach loss {TARGET:g} and the bootstrap 95% "
                       "lower bound of Spearman's rho between start distance and steps to target (not reached: "
                       "+inf; diverged: left out) is > 0"),
            statistic=f"Spearman rho, weakest pair ({weakest[0]})", value=weakest[2],
            interval=(weakest[1], weakest[3]),
            details="; ".join(f"{k}: rho {r['rho']:.2f} [{r['rho_low']:.2f}, {r['rho_high']:.2f}], reached "
                              f"{r['reached']}/{r['particles']}" for k, r in m["pairs"].items()),
        )  # fmt: skip

    def execute(self, size: str, out: Path, runner: Any) -> ExperimentResult:
        from ._measure import steps_to

        n, steps = SIZES[size]
        measured: dict[str, Any] = {"pairs": {}}
        table = []
        fig, ax = figure(len(LANDSCAPES), width=5.2)
        for li, (lname, ls) in enumerate(LANDSCAPES.items()):
            pts = starts(n, ls["minimum"], ls["radii"], seed=li)
            steps_l = steps * ls.get("steps_factor", 1)
            base = {"run": {"particles": n, "steps": steps_l, "record_every": max(1, steps_l // 200), "seed": 4},
                    "landscape": ls["landscape"], "optimizer": ls["optimizers"]["gd"],
                    "init": {"scheme": "points", "points": pts.tolist()},
                    "stop": {"grad_tol": 0.0, "bound": 1e6}}  # fmt: skip
            opts = ls["optimizers"]
            results = runner.grid(lname, base, [{"optimizer": o} for o in opts.values()])
            dist = np.linalg.norm(pts - np.asarray(ls["minimum"]), axis=1)
            a = ax[0, li]
            for oi, (oname, res) in enumerate(zip(opts, results, strict=True)):
                s = steps_to(res.trajectory_loss, res.record_steps, TARGET)
                alive = np.asarray(res.status) < 2
                ok = np.isfinite(s) & alive
                # not reached within the run: censored at +inf (ranked last); diverged particles are left out
                rho, lo, hi = spearman(dist[alive], s[alive])
                key = f"{lname}/{oname}"
                measured["pairs"][key] = {"rho": rho, "rho_low": lo, "rho_high": hi, "reached": int(ok.sum()),
                                          "particles": n}  # fmt: skip
                table.append({"landscape": lname, "optimizer": f"{oname} lr {opts[oname]['lr']:g}",
                              "reached target": int(ok.sum()), "particles": n, "spearman rho": rho, "rho low": lo,
                              "rho high": hi, "median steps": float(np.median(s[ok])) if ok.any() else float("inf")})
                a.scatter(dist[ok], s[ok], s=4, alpha=0.4, color=f"C{oi}", label=f"{oname} (lr {opts[oname]['lr']:g}), "
                          f"rho {rho:.2f}")  # fmt: skip
                if (~ok).any():
                    a.scatter(dist[~ok], np.full((~ok).sum(), steps_l * 1.3), marker="x", s=10, color=f"C{oi}",
                              label=f"{oname}: not reached ({int((~ok).sum())})")  # fmt: skip
                edges = np.logspace(np.log10(dist.min()), np.log10(dist.max()), 9)
                mids = np.sqrt(edges[1:] * edges[:-1])
                med = [np.median(s[ok & (dist >= e0) & (dist < e1)]) if np.any(ok & (dist >= e0) & (dist < e1))
                       else np.nan for e0, e1 in itertools.pairwise(edges)]  # fmt: skip
                a.plot(mids, med, "-", color=f"C{oi}", lw=2)
            a.set_xscale("log")
            a.set_yscale("log")
            a.set_xlabel(f"start's distance from the minimum {tuple(ls['minimum'])} (param. units)")
            a.set_ylabel(f"steps to loss <= {TARGET:g}")
            a.legend(fontsize=6, title="dots: particles; line: median per bin", title_fontsize=6)
            a.set_title(lname, fontsize=9)
        f1 = save(fig, out, "distance", f"{n} starts per landscape, log-uniform distances; quadratic D=2 "
                                       f"condition 10, {steps} steps; Rosenbrock D=2, {5 * steps} steps")  # fmt: skip
        return ExperimentResult(name=self.name, claim=self.claim, size=size, verdict=self.verdict_from(measured),
                                table=table, figures=[f1], specs={}, measured=measured)  # fmt: skip


EXPERIMENT = InitDistance

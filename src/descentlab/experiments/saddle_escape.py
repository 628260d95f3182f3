"""saddle-escape: particles leave a saddle along the Hessian's negative-curvature direction.

The symmetric double well (x0^2 - 1)^2 + 0.5 x1^2 has a saddle at the origin
(Hessian eigenvalues -4 along x0 and 1 along x1). Particles start in a tiny
ball around it (radius ~1e-3), and on its stable manifold (x0 = 0 exactly).
Per optimizer: the share that leaves a ball of radius 0.5, when (escape
time), and the angle of the exit direction to the negative-curvature
eigenvector (computed from the Hessian). Expected: gradient descent, momentum,
Adam, Langevin dynamics and saddle-free Newton escape from the ball along the
eigenvector; Newton's method is attracted to the saddle; on the stable
manifold only the noise of Langevin dynamics escapes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._plot import figure, save
from .base import Experiment, ExperimentResult, Verdict, depends
from .stats import wilson

SIZES = {"tiny": (32, 400), "small": (400, 600), "full": (4000, 1000)}
RADIUS = 0.5
START_SCALE = 1e-3
OPTIMIZERS: dict[str, dict[str, Any]] = {
    "gd": {"name": "sgd", "lr": 0.05},
    "momentum": {"name": "momentum", "lr": 0.01, "momentum": 0.9},
    "adam": {"name": "adam", "lr": 0.01},
    "langevin": {"name": "langevin", "lr": 0.05, "noise_std": 0.3},
    "newton": {"name": "newton", "lr": 1.0},
    "saddle-free newton": {"name": "saddle_free_newton", "lr": 0.2, "damping": 1e-3},
}
#: What the claim expects of each optimizer: escapes from near the saddle, escapes from the stable manifold.
EXPECTED: dict[str, tuple[bool, bool]] = {
    "gd": (True, False), "momentum": (True, False), "adam": (True, False), "langevin": (True, True),
    "newton": (False, False), "saddle-free newton": (True, False),
}  # fmt: skip
COS_MIN = 0.9


def _meets(escaped: int, n: int, expect: bool) -> bool:
    lo, hi = wilson(escaped, n)
    return lo >= 0.9 if expect else hi <= 0.1


class SaddleEscape(Experiment):
    name = "saddle-escape"
    claim = ("Near a saddle, first-order methods and noise escape along the negative-curvature eigenvector, Newton's "
             "method is attracted to the saddle and saddle-free Newton escapes; from the stable manifold only noise "
             "escapes.")  # fmt: skip

    def verdict_from(self, m: dict[str, Any]) -> Verdict:
        """Per optimizer: the Wilson interval of the escaped share is >= 0.9 (lower bound) where escape is expected,
        <= 0.1 (upper bound) where it is not, for both start sets; escapers from near the saddle leave with median
        |cos(exit direction, eigenvector)| >= 0.9."""
        per: dict[str, bool] = {}
        worst = None
        for oname, r in m["optimizers"].items():
            near_ok = _meets(r["near_escaped"], r["n"], EXPECTED[oname][0])
            man_ok = _meets(r["manifold_escaped"], r["n"], EXPECTED[oname][1])
            cos_ok = (not EXPECTED[oname][0]) or (r["near_cos"] >= COS_MIN)
            per[oname] = near_ok and man_ok and cos_ok
            lo, hi = wilson(r["near_escaped"], r["n"])
            gap = (lo - 0.9) if EXPECTED[oname][0] else (0.1 - hi)
            if worst is None or gap < worst[0]:
                worst = (gap, oname, r["near_escaped"] / r["n"], lo, hi)
        assert worst is not None
        return Verdict(
            outcome=depends(per, "the optimizer"),
            criterion=(f"per optimizer and start set, escape from the ball of radius {RADIUS}: Wilson lower bound "
                       ">= 0.9 where expected (GD, momentum, Adam, Langevin, saddle-free Newton from near the saddle; "
                       "Langevin from the stable manifold), upper bound <= 0.1 where not; median |cos| to the "
                       f"negative-curvature eigenvector >= {COS_MIN}"),
            statistic=f"escaped share from near the saddle, closest case ({worst[1]})", value=worst[2],
            interval=(worst[3], worst[4]),
            details="; ".join(f"{k}: near {r['near_escaped']}/{r['n']} (median step {r['near_step']:g}, |cos| "
                              f"{r['near_cos']:.3f}), manifold {r['manifold_escaped']}/{r['n']}"
                              for k, r in m["optimizers"].items()),
        )  # fmt: skip

    def execute(self, size: str, out: Path, runner: Any) -> ExperimentResult:
        from ._measure import escape, problem

        n, steps = SIZES[size]
        rng = np.random.default_rng(0)
        near = rng.normal(0.0, START_SCALE, size=(n, 2))
        manifold = np.stack([np.zeros(n), rng.uniform(-0.3, 0.3, n)], axis=1)
        land = {"name": "double_well", "dim": 2, "barrier": 1.0}
        pr = problem({"run": {"particles": 1, "steps": 1}, "landscape": land, "optimizer": {"name": "sgd"}})
        h = pr.hess(np.zeros((1, 2)))[0]
        ev, vec = np.linalg.eigh(h)
        v_neg = vec[:, 0]
        measured: dict[str, Any] = {"hessian_eigenvalues": ev.tolist(), "eigenvector": v_neg.tolist(),
                                    "optimizers": {}}  # fmt: skip
        table = []
        fig, ax = figure(3, width=4.8)
        g = np.linspace(-1.5, 1.5, 121)
        gx, gy = np.meshgrid(g, g)
        zz = pr.value(np.stack([gx.ravel(), gy.ravel()], axis=1)).reshape(gx.shape)
        ax[0, 0].contour(gx, gy, zz, levels=20, cmap="Greys", linewidths=0.6)
        ax[0, 0].add_patch(__import__("matplotlib.patches", fromlist=["Circle"]).Circle(
            (0, 0), RADIUS, fill=False, ls="--", color="k", label=f"ball r = {RADIUS}"))  # fmt: skip
        results = {}
        for key, pts in (("near", near), ("manifold", manifold)):
            base = {"run": {"particles": n, "steps": steps, "record_every": 1, "seed": 6}, "landscape": land,
                    "optimizer": OPTIMIZERS["gd"], "init": {"scheme": "points", "points": pts.tolist()},
                    "stop": {"grad_tol": 0.0, "bound": 1e6}}  # fmt: skip
            results[key] = runner.grid(key, base, [{"optimizer": o} for o in OPTIMIZERS.values()])
        for oi, oname in enumerate(OPTIMIZERS):
            r: dict[str, Any] = {"n": n}
            for key in ("near", "manifold"):
                res = results[key][oi]
                st, dirs = escape(res.trajectory_x, res.record_steps, np.zeros(2), RADIUS)
                esc = st >= 0
                cos = np.abs(dirs[esc] @ v_neg)
                r[f"{key}_escaped"] = int(esc.sum())
                r[f"{key}_step"] = float(np.median(st[esc])) if esc.any() else float("inf")
                r[f"{key}_cos"] = float(np.median(cos)) if esc.any() else float("nan")
                lo, hi = wilson(int(esc.sum()), n)
                table.append({"optimizer": oname, "starts": key, "escaped": int(esc.sum()) / n, "wilson low": lo,
                              "wilson high": hi, "median escape step": r[f"{key}_step"],
                              "median abs cos to eigenvector": r[f"{key}_cos"],
                              "median final distance to saddle": float(np.median(np.linalg.norm(res.final_x, axis=1))),
                              "expected to escape": EXPECTED[oname][0 if key == "near" else 1]})  # fmt: skip
                if key == "near":
                    for i in range(min(6, n)):
                        ax[0, 0].plot(res.trajectory_x[i, :, 0], res.trajectory_x[i, :, 1], color=f"C{oi}", lw=0.8,
                                      label=oname if i == 0 else None)  # fmt: skip
                    if esc.any():
                        s = np.sort(st[esc])
                        ax[0, 1].step(s, np.arange(1, s.size + 1) / n, where="post", color=f"C{oi}", label=oname)
                        ax[0, 2].hist(np.log10(np.clip(1.0 - np.abs(dirs[esc] @ v_neg), 1e-16, None)),
                                      bins=np.linspace(-16, 0, 33), histtype="step",
                                      color=f"C{oi}", lw=1.5, label=oname)  # fmt: skip
                    else:
                        ax[0, 1].plot([], [], color=f"C{oi}", label=f"{oname}: none escaped")
            measured["optimizers"][oname] = r
        ax[0, 0].plot(0, 0, "kx", ms=8)
        ax[0, 0].set_xlim(-1.5, 1.5)
        ax[0, 0].set_ylim(-1.5, 1.5)
        ax[0, 0].set_xlabel("x0 (negative-curvature direction)")
        ax[0, 0].set_ylabel("x1 (positive-curvature direction)")
        ax[0, 0].legend(fontsize=6, loc="upper right")
        ax[0, 0].set_title("paths from near the saddle (x)", fontsize=9)
        ax[0, 1].set_xscale("log")
        from matplotlib.ticker import NullFormatter

        ax[0, 1].xaxis.set_minor_formatter(NullFormatter())
        ax[0, 1].set_xlabel(f"step of first exit from the ball r = {RADIUS}")
        ax[0, 1].set_ylabel("share of particles escaped (ECDF)")
        ax[0, 1].set_ylim(0, 1.02)
        ax[0, 1].legend(fontsize=6)
        ax[0, 1].set_title(f"escape time from r0 ~ {START_SCALE:g}", fontsize=9)
        ax[0, 2].set_xlabel("log10(1 - |cos|), exit direction vs eigenvector (-16: aligned)")
        ax[0, 2].set_ylabel("particles")
        ax[0, 2].legend(fontsize=6)
        ax[0, 2].set_title("escape direction", fontsize=9)
        f1 = save(fig, out, "saddle", f"double well (x0^2-1)^2 + x1^2/2, saddle eigenvalues {ev.round(3).tolist()}; "
                                     f"{n} particles per start set, {steps} steps; lrs: " + ", ".join(
                                         f"{k} {o['lr']:g}" for k, o in OPTIMIZERS.items()))  # fmt: skip
        return ExperimentResult(name=self.name, claim=self.claim, size=size, verdict=self.verdict_from(measured),
                                table=table, figures=[f1], specs={}, measured=measured)  # fmt: skip


EXPERIMENT = SaddleEscape

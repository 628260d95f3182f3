"""critical-points: the one-sample, two-parameter loss (1 - w1 w2 x)^2 (x = y = 1).

Its gradient is zero at the origin, where the Hessian [[0, -2], [-2, 0]] has
eigenvalues -2 and 2 (a saddle); its minima form the curve w1 w2 = 1; near the
origin the second-order Taylor model 1 - 2 w1 w2 differs from the loss by
(w1 w2)^2 = O(r^4). Gradient descent from a box of starts ends on the curve.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._plot import figure, save
from .base import NOT_SUPPORTED, SUPPORTED, Experiment, ExperimentResult, Verdict
from .stats import wilson

SIZES = {"tiny": (64, 400), "small": (2000, 2000), "full": (20000, 4000)}
LR = 0.05
CURVE_TOL = 1e-3
#: The claim of the Taylor model: its error falls at least like r^3 (slope of log error vs log r).
TAYLOR_SLOPE_MIN = 2.9


def verdict(grad_at_origin: float, eigenvalues: np.ndarray, on_curve: int, converged: int,
            taylor_slope: float) -> Verdict:  # fmt: skip
    """Supported when the origin is critical (|grad| < 1e-9), its Hessian eigenvalues are -2 and 2 (1e-6),
    the Wilson lower bound of the share of converged end points on w1 w2 = 1 is >= 0.9, and the
    Taylor error slope is >= 2.9."""
    lo, hi = wilson(on_curve, converged)
    ev = np.sort(np.asarray(eigenvalues, dtype=np.float64))
    checks = {
        "critical at 0": grad_at_origin < 1e-9,
        "eigenvalues -2, 2": ev.shape == (2,) and bool(np.allclose(ev, [-2.0, 2.0], atol=1e-6)),
        "end points on w1 w2 = 1": converged > 0 and lo >= 0.9,
        "Taylor error O(r^3) or smaller": taylor_slope >= TAYLOR_SLOPE_MIN,
    }
    failed = [k for k, v in checks.items() if not v]
    return Verdict(
        outcome=SUPPORTED if not failed else NOT_SUPPORTED,
        criterion=("|grad(0)| < 1e-9, Hessian eigenvalues at 0 = (-2, 2) +- 1e-6, Wilson lower bound of the share "
                   f"of converged end points with |w1 w2 - 1| < {CURVE_TOL} >= 0.9, Taylor error slope >= "
                   f"{TAYLOR_SLOPE_MIN}"),
        statistic="share of converged end points on w1 w2 = 1",
        value=on_curve / converged if converged else float("nan"),
        interval=(lo, hi),
        details=(f"|grad(0)| = {grad_at_origin:.2g}; Hessian eigenvalues at 0: {ev.round(9).tolist()}; "
                 f"{on_curve}/{converged} converged end points on the curve; log-log slope of the Taylor error "
                 f"{taylor_slope:.3f}" + (f"; failed: {', '.join(failed)}" if failed else "")),
    )


class CriticalPoints(Experiment):
    name = "critical-points"
    claim = ("The loss (1 - w1 w2 x)^2 has a saddle at the origin (gradient 0, Hessian eigenvalues -2 and 2), "
             "a curve of minima w1 w2 = 1, and its second-order Taylor model is accurate near the origin.")  # fmt: skip

    def verdict_from(self, m: dict[str, Any]) -> Verdict:
        return verdict(m["grad_at_origin"], np.asarray(m["eigenvalues"]), m["on_curve"], m["converged"],
                       m["taylor_slope"])  # fmt: skip

    def execute(self, size: str, out: Path, runner: Any) -> ExperimentResult:
        from ._measure import problem

        n, steps = SIZES[size]
        base = {
            "run": {"particles": n, "steps": steps, "record_every": max(1, steps // 50), "seed": 1},
            "landscape": {"name": "product", "x": 1.0, "y": 1.0},
            "optimizer": {"name": "sgd", "lr": LR},
            "init": {"scheme": "uniform", "low": -2.0, "high": 2.0},
            "stop": {"grad_tol": 1e-8, "patience": 1, "bound": 1e6},
        }
        (res,) = runner.grid("gd", base)
        pr = problem(base)
        origin = np.zeros((1, 2))
        g0 = float(np.linalg.norm(pr.grad(origin)[0]))
        ev = np.linalg.eigvalsh(pr.hess(origin)[0])
        conv = np.asarray(res.status) == 1
        prod = res.final_x[:, 0] * res.final_x[:, 1]
        on_curve = int(np.sum(conv & (np.abs(prod - 1.0) < CURVE_TOL)))
        # Taylor model around the origin vs the true loss on circles of radius r
        radii = np.logspace(-3, -0.3, 12)
        ang = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        hess0 = pr.hess(origin)[0]
        f0 = float(pr.value(origin)[0])
        errs = []
        for r in radii:
            pts = r * np.stack([np.cos(ang), np.sin(ang)], axis=1)
            taylor = f0 + pts @ pr.grad(origin)[0] + 0.5 * np.einsum("ni,ij,nj->n", pts, hess0, pts)
            errs.append(float(np.max(np.abs(pr.value(pts) - taylor))))
        errs_a = np.asarray(errs)
        slope = float(np.polyfit(np.log(radii), np.log(errs_a), 1)[0])
        measured = {"grad_at_origin": g0, "eigenvalues": ev.tolist(), "on_curve": on_curve,
                    "converged": int(conv.sum()), "taylor_slope": slope,
                    "status_counts": np.bincount(np.asarray(res.status, dtype=np.int64), minlength=4).tolist()}
        v = self.verdict_from(measured)

        fig, ax = figure(2)
        a = ax[0, 0]
        g = np.linspace(-2.2, 2.2, 200)
        w1, w2 = np.meshgrid(g, g)
        loss = pr.value(np.stack([w1.ravel(), w2.ravel()], axis=1)).reshape(w1.shape)
        cs = a.contourf(w1, w2, np.log10(loss + 1e-6), levels=30, cmap="viridis")
        fig.colorbar(cs, ax=a, label="log10(loss + 1e-6)")
        for sgn in (1, -1):
            t = np.linspace(0.45, 2.2, 100) * sgn
            a.plot(t, 1.0 / t, "w--", lw=1.2, label="minima w1 w2 = 1" if sgn > 0 else None)
        k = min(40, res.trajectory_x.shape[0])
        for i in range(k):
            a.plot(res.trajectory_x[i, :, 0], res.trajectory_x[i, :, 1], color="orange", lw=0.6, alpha=0.7,
                   label="GD trajectories" if i == 0 else None)  # fmt: skip
        a.scatter(res.final_x[:, 0], res.final_x[:, 1], s=3, color="red", label="end points", zorder=3)
        a.plot([0], [0], "kx", ms=10, mew=2, label="saddle (0, 0): eigenvalues -2, 2")
        a.set_xlim(-2.2, 2.2)
        a.set_ylim(-2.2, 2.2)
        a.set_xlabel("w1 (parameter, dimensionless)")
        a.set_ylabel("w2 (parameter, dimensionless)")
        a.legend(fontsize=7, loc="upper right")
        a.set_title("loss landscape, critical points, GD paths", fontsize=9)
        b = ax[0, 1]
        b.loglog(radii, errs_a, "o-", label=f"max |loss - Taylor| (fit slope {slope:.2f})")
        b.loglog(radii, radii**4, "k--", lw=0.8, label="r^4 (exact: (w1 w2)^2 <= r^4/4)")
        b.loglog(radii, radii**2, "k:", lw=0.8, label="r^2 (size of the quadratic term)")
        b.set_xlabel("radius r around the origin (parameter units)")
        b.set_ylabel("max error of the 2nd-order Taylor model (loss units)")
        b.legend(fontsize=7)
        b.set_title("Taylor model vs true loss", fontsize=9)
        f1 = save(fig, out, "landscape", f"(1 - w1 w2 x)^2, x = 1: {n} particles, GD lr = {LR}, {steps} steps, "
                                         "starts U(-2, 2)^2")  # fmt: skip
        table = [
            {"quantity": "|grad| at origin", "value": g0, "expected": 0.0},
            {"quantity": "Hessian eigenvalue 1 at origin", "value": float(ev[0]), "expected": -2.0},
            {"quantity": "Hessian eigenvalue 2 at origin", "value": float(ev[1]), "expected": 2.0},
            {"quantity": "converged particles", "value": int(conv.sum()), "expected": n},
            {"quantity": "end points on w1 w2 = 1", "value": on_curve, "expected": int(conv.sum())},
            {"quantity": "Taylor error slope (log-log)", "value": slope, "expected": 4.0},
        ] + [{"quantity": f"Taylor error at r = {r:.3g}", "value": e, "expected": None}
             for r, e in zip(radii[::3], errs_a[::3], strict=True)]  # fmt: skip
        return ExperimentResult(
            name=self.name, claim=self.claim, size=size, verdict=v, table=table, figures=[f1], specs={},
            measured=measured,
        )


EXPERIMENT = CriticalPoints

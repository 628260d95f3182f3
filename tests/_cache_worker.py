"""Run landscape x optimizer pairs in this process and save their results (used by test_kernel_cache).

Usage: python _cache_worker.py OUT.npz LANDSCAPE:OPTIMIZER [LANDSCAPE:OPTIMIZER ...]
"""

from __future__ import annotations

import sys

import numpy as np

import descentlab as dl

#: Small, but long enough that every optimizer's rule shows in the last bits.
BASE = {
    "run": {"particles": 300, "steps": 400, "record_every": 100, "seed": 1},
    "init": {"scheme": "uniform", "low": -2.0, "high": 2.0},
    "stop": {"grad_tol": 0.0},
}
LR = {"sgd": 0.01, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.1, "rmsprop": 0.01, "adam": 0.01,
      "adamw": 0.01, "langevin": 0.01}  # fmt: skip


def run(landscape: str, optimizer: str) -> dict[str, np.ndarray]:
    spec = {**BASE, "landscape": {"name": landscape}, "optimizer": {"name": optimizer, "lr": LR.get(optimizer, 0.01)}}
    r = dl.simulate(spec)
    return {"final_x": r.final_x, "final_loss": r.final_loss, "status": r.status, "stop_step": r.stop_step,
            "trajectory_x": r.trajectory_x}  # fmt: skip


def main(argv: list[str]) -> None:
    out: dict[str, np.ndarray] = {}
    for pair in argv[1:]:
        land, opt = pair.split(":")
        for key, value in run(land, opt).items():
            out[f"{land}:{opt}:{key}"] = value
    np.savez(argv[0], **out)


if __name__ == "__main__":
    main(sys.argv[1:])

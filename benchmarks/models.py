"""Finite-sum benchmark (issue 4): many small networks trained at once.

    python benchmarks/models.py [--particles 4096] [--steps 200] [--batch 32] [--dtypes float32,float64]

Workload: P particles, each an MLP 64-32-10 (tanh, softmax cross-entropy) on
scikit-learn's digits (1437 training samples), SGD lr 0.05, minibatches of B
drawn by a fresh permutation per particle and epoch. Figure: sample-gradients
per second = P x B x steps / seconds.

Peer, in the same process: torch with a batched-matmul formulation (parameters
(P, 32, 64) ... , per-particle minibatches gathered by index, ``torch.bmm``,
autograd, in-place SGD), the usual way to train many small networks at once in
torch. Both are timed after a warm-up (descentlab's kernel compiled; torch's
first steps run); best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any

import numba
import numpy as np

from descentlab.engine.run import Simulation
from descentlab.engine.spec import parse_spec


def spec_for(p: int, steps: int, batch: int, dtype: str) -> dict[str, Any]:
    return {
        "run": {"particles": p, "steps": steps, "record_every": steps, "seed": 0, "dtype": dtype},
        "landscape": {"name": "mlp", "hidden": [32], "activation": "tanh", "loss": "cross_entropy"},
        "data": {"name": "digits"},
        "batch": {"size": batch, "shuffle": True},
        "optimizer": {"name": "sgd", "lr": 0.05},
        "init": {"scheme": "xavier_uniform"},
        "stop": {"grad_tol": 0.0},
    }


def time_descentlab(p: int, steps: int, batch: int, dtype: str, repeats: int) -> tuple[float, float]:
    """(best seconds for ``steps`` updates, final mean training loss)."""
    Simulation(parse_spec(spec_for(64, 2, batch, dtype))).advance(2)  # compile (or load) the kernel
    rs = parse_spec(spec_for(p, steps, batch, dtype))
    best, loss = np.inf, np.nan
    for _ in range(repeats):
        sim = Simulation(rs)
        t = time.perf_counter()
        recs = sim.advance(steps)
        best = min(best, time.perf_counter() - t)
        loss = float(np.mean(recs.loss[:, -1]))
    return best, loss


def time_torch(p: int, steps: int, batch: int, dtype: str, repeats: int, data: Any,
               device: str = "cpu") -> tuple[float, float] | None:  # fmt: skip
    """(best seconds, final loss) of the torch peer on ``device`` (``cpu`` or ``cuda``)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(numba.get_num_threads())
    tdt = torch.float32 if dtype == "float32" else torch.float64
    x = torch.as_tensor(data.x_train, dtype=tdt, device=device)
    y = torch.as_tensor(data.y_train, dtype=torch.int64, device=device)
    n = x.shape[0]
    gen = torch.Generator().manual_seed(0)

    def rand(*shape: int, dt: Any = tdt) -> Any:
        return torch.rand(*shape, generator=gen, dtype=dt).to(device)

    def init() -> list[Any]:
        b1, b2 = (6 / (64 + 32)) ** 0.5, (6 / (32 + 10)) ** 0.5
        w1 = ((rand(p, 32, 64) * 2 - 1) * b1).requires_grad_()
        w2 = ((rand(p, 10, 32) * 2 - 1) * b2).requires_grad_()
        c1 = torch.zeros(p, 1, 32, dtype=tdt, device=device, requires_grad=True)
        c2 = torch.zeros(p, 1, 10, dtype=tdt, device=device, requires_grad=True)
        return [w1, c1, w2, c2]

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def run(params: list[Any], k: int) -> float:
        w1, c1, w2, c2 = params
        perm = torch.argsort(rand(p, n, dt=torch.float32), dim=1)  # a permutation per particle
        pos = 0
        loss = torch.zeros(())
        for _ in range(k):
            if pos + batch > n:
                perm = torch.argsort(rand(p, n, dt=torch.float32), dim=1)
                pos = 0
            idx = perm[:, pos : pos + batch]
            pos += batch
            xb, yb = x[idx], y[idx]  # (P, B, 64), (P, B)
            h = torch.tanh(torch.baddbmm(c1, xb, w1.transpose(1, 2)))
            logits = torch.baddbmm(c2, h, w2.transpose(1, 2))
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 10), yb.reshape(-1), reduction="mean") * p
            for q in params:
                q.grad = None
            loss.backward()
            with torch.no_grad():
                for q in params:
                    q -= 0.05 * q.grad
        sync()
        return float(loss.detach()) / p

    run(init(), 3)
    best, last = np.inf, np.nan
    for _ in range(repeats):
        params = init()
        t = time.perf_counter()
        last = run(params, steps)
        best = min(best, time.perf_counter() - t)
    return best, last


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--particles", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    p, steps, b = args.particles, args.steps, args.batch
    data = parse_spec(spec_for(1, 1, b, "float64")).finite_sum.data
    versions = f"numba {numba.__version__} ({numba.get_num_threads()} threads), numpy {np.__version__}"
    try:
        import torch

        versions += f", torch {torch.__version__} ({numba.get_num_threads()} threads)"
    except ImportError:
        versions += ", torch not installed (peer skipped)"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {versions}")
    print(f"workload: {p} particles x MLP 64-32-10 tanh, digits ({data.x_train.shape[0]} train), "
          f"batch {b}, SGD, {steps} steps; sample-gradients/s = P*B*steps/s")  # fmt: skip
    print("| dtype | impl | s | M sample-gradients/s | final train loss | descentlab / torch |")
    print("|---|---|---:|---:|---:|---:|")
    for dtype in args.dtypes.split(","):
        secs, loss = time_descentlab(p, steps, b, dtype, args.repeats)
        rate = p * b * steps / secs / 1e6
        tt = time_torch(p, steps, b, dtype, args.repeats, data)
        print(f"| {dtype} | descentlab | {secs:.3f} | {rate:.2f} | {loss:.3f} | |")
        if tt is not None:
            trate = p * b * steps / tt[0] / 1e6
            print(f"| {dtype} | torch (bmm, autograd) | {tt[0]:.3f} | {trate:.2f} | {tt[1]:.3f} (last batch) "
                  f"| {rate / trate:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()

"""GPU benchmark (issue 13): descentlab's CUDA engine beside JAX and PyTorch on the same GPU.

    python benchmarks/gpu.py [--sizes 1e5,1e6,1e7,1e8] [--dtypes float32,float64] [--steps 1000]
                             [--markdown benchmarks/RESULTS.md] [--smoke]

Workloads, each timed after a warm-up (compiles excluded), best of ``--repeats``:

* **Rosenbrock + Adam** (D = 2, lr 1e-3, ``--steps`` steps, status checks on: bound and
  gradient tolerance tested at every step): particle-steps/s of descentlab
  (``simulate`` with ``target = "cuda"``, records at the first and last step only),
  JAX (``jit(scan(vmap(step)))`` and the fused column form, on JAX's default device)
  and torch (``torch.optim.Adam(fused=True)`` on one (N, 2) CUDA tensor).
  Plus, at each size: the recording overhead (records every 10 steps against none: the
  issue's goal is >= 0.6 of the rate without records), the same with the records' copy
  not overlapped with compute (each chunk one launch), and the records' transfer share
  (the seconds their device->host copy takes, over the recording run's seconds: what the
  overlap hides; the state itself crosses once per run).
* **MLP** (64-32-10 tanh on digits, SGD on minibatches of 32, as ``benchmarks/models.py``):
  sample-gradients/s of descentlab on CUDA beside torch's batched-matmul formulation on CUDA.

Run it on a machine with an NVIDIA GPU, numba-cuda, JAX with CUDA and torch with CUDA
(finishes in under 5 minutes on one H200 with the defaults). ``--smoke`` checks the
plumbing anywhere in seconds: tiny sizes, and descentlab on the CPU (or on the CUDA
simulator when ``NUMBA_ENABLE_CUDASIM=1``) - its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import descentlab as dl
from descentlab.engine.spec import parse_spec
from suite import PeerUnavailable, jax_direct_peer, jax_peer, torch_peer


def gpu_target() -> str:
    """``cuda`` when numba sees a GPU (or the simulator), else ``cpu`` (smoke runs only)."""
    try:
        from numba import cuda

        return "cuda" if cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def rosenbrock_spec(n: int, dtype: str, steps: int, target: str, record_every: int | None = None) -> dict[str, Any]:
    return {
        "run": {"particles": n, "steps": steps, "record_every": record_every or steps, "seed": 0, "dtype": dtype,
                "target": target},
        "landscape": {"name": "rosenbrock"},
        "optimizer": {"name": "adam", "lr": 1e-3},
        "init": {"scheme": "uniform", "low": -2.0, "high": 2.0},
        "stop": {"grad_tol": 1e-12, "bound": 1e6},
    }  # fmt: skip


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return float(best)


def descentlab_rate(n: int, dtype: str, steps: int, target: str, repeats: int,
                    record_every: int | None = None) -> tuple[float, Any]:  # fmt: skip
    """(particle-steps/s, the last Result) of ``simulate`` (the kernel's compile or load before it)."""
    dl.simulate(rosenbrock_spec(min(n, 256), dtype, 2, target))
    res: list[Any] = []
    secs = best_of(lambda: res.append(dl.simulate(rosenbrock_spec(n, dtype, steps, target, record_every))), repeats)
    return n * steps / secs, res[-1]


def torch_cuda_rate(x0: np.ndarray, steps: int, dtype: str, repeats: int) -> float:
    """The suite's torch peer (``torch.optim.Adam(fused=True)`` on one (N, 2) tensor) on the GPU."""
    try:
        import torch
    except ImportError:
        raise PeerUnavailable("torch not installed") from None
    run = torch_peer(x0, steps, dtype, device="cuda" if torch.cuda.is_available() else "cpu")
    run()
    return x0.shape[0] * steps / best_of(run, repeats)


def transfer_share(n: int, dtype: str, steps: int, record_every: int, seconds: float) -> float:
    """Seconds that copying a run's records (every ``record_every`` steps: x (n, R, 2) and loss (n, R))
    from the device into page-locked host memory takes, over the run's ``seconds`` (NaN without a GPU).

    The engine keeps the state on the device for the whole run and copies each chunk's records back
    while the next piece of particles computes (``descentlab.kernels.cuda``), so this is the share
    the overlap hides, not one the run pays."""
    try:
        from numba import cuda

        if not cuda.is_available():
            return float("nan")
    except ImportError:
        return float("nan")
    r = steps // record_every
    dev = [cuda.device_array((n, r, 2), dtype), cuda.device_array((n, r), dtype)]
    host = [cuda.pinned_array(d.shape, dtype) for d in dev]

    def copy() -> None:
        for d, h in zip(dev, host, strict=True):
            d.copy_to_host(h)
        cuda.synchronize()

    copy()
    return best_of(copy, 2) / seconds


def not_overlapped(fn: Callable[[], Any]) -> Any:
    """``fn()`` with the CUDA engine running each chunk as one launch: its records come back after it,
    not while the next piece of particles computes (the comparison for the overlap)."""
    try:
        import descentlab.kernels.cuda as kc
    except ImportError:
        return fn()
    saved = kc.PIECE_PARTICLES
    kc.PIECE_PARTICLES = 1 << 62
    try:
        return fn()
    finally:
        kc.PIECE_PARTICLES = saved


def mlp_rates(p: int, steps: int, dtype: str, target: str, repeats: int) -> tuple[float, float | None]:
    """(descentlab, torch) sample-gradients/s of the MLP workload of ``benchmarks/models.py``."""
    from models import spec_for, time_torch

    batch = 32
    spec = spec_for(p, steps, batch, dtype)
    spec["run"]["target"] = target
    small = spec_for(64, 2, batch, dtype)
    small["run"]["target"] = target
    dl.simulate(small)
    secs = best_of(lambda: dl.simulate(spec), repeats)
    ours = p * batch * steps / secs
    try:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return ours, None
    data = parse_spec(spec).finite_sum.data
    got = time_torch(p, steps, batch, dtype, repeats, data, device=device)
    return ours, (p * batch * steps / got[0]) if got else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1e5,1e6,1e7,1e8")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--mlp-particles", type=int, default=65536)
    ap.add_argument("--markdown", type=Path, default=None, help="append the table to this file")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: check that everything runs")
    a = ap.parse_args(argv)
    sizes = [int(float(s)) for s in a.sizes.split(",")]
    steps, mlp_p = a.steps, a.mlp_particles
    if a.smoke:
        sizes, steps, mlp_p = [64, 256], 20, 64
    target = gpu_target()
    rows = []
    print(f"descentlab target: {target}", flush=True)
    for dtype in a.dtypes.split(","):
        for n in sizes:
            rate, res = descentlab_rate(n, dtype, steps, target, a.repeats)
            x0 = res.init_x
            row: dict[str, Any] = {"workload": "rosenbrock+adam", "dtype": dtype, "N": n, "descentlab": rate}
            rec_rate, _ = descentlab_rate(n, dtype, steps, target, 1, record_every=10)
            row["record_ratio"] = rec_rate / rate
            row["transfer_share"] = transfer_share(n, dtype, steps, 10, n * steps / rec_rate)
            if target == "cuda":
                plain, _ = not_overlapped(lambda n=n, dtype=dtype: descentlab_rate(n, dtype, steps, target, 1,
                                                                                   record_every=10))  # fmt: skip
                row["record_ratio_plain"] = plain / rate
            for name, peer in (("jax", jax_peer), ("jax-direct", jax_direct_peer)):
                try:
                    run = peer(x0, steps, dtype)
                    run()
                    row[name] = n * steps / best_of(run, a.repeats)
                except PeerUnavailable as exc:
                    row[name] = f"n/a ({exc})"
            try:
                row["torch"] = torch_cuda_rate(x0, steps, dtype, a.repeats)
            except PeerUnavailable as exc:
                row["torch"] = f"n/a ({exc})"
            print(json.dumps(row), flush=True)
            rows.append(row)
        ours, theirs = mlp_rates(mlp_p, 50 if not a.smoke else 4, dtype, target, a.repeats)
        row = {"workload": "mlp 64-32-10", "dtype": dtype, "N": mlp_p, "descentlab": ours, "torch": theirs}
        print(json.dumps(row), flush=True)
        rows.append(row)
    table = markdown(rows, target)
    print(table)
    if a.markdown is not None:
        with a.markdown.open("a") as fh:
            fh.write("\n" + table + "\n")
    return 0


def markdown(rows: list[dict[str, Any]], target: str) -> str:
    def rate(v: Any) -> str:
        return f"{v / 1e6:,.0f}" if isinstance(v, float) else str(v if v is not None else "n/a")

    lines = [f"GPU benchmark ({platform.node()}, descentlab target {target}); M particle-steps/s "
             "(MLP: M sample-gradients/s)", "",
             "| workload | dtype | N | descentlab | jax | jax-direct | torch | descentlab / best peer | "
             "records' transfer share | records every 10 / none | the same, not overlapped |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        peers = [r.get(k) for k in ("jax", "jax-direct", "torch") if isinstance(r.get(k), float)]
        ratio = f"{r['descentlab'] / max(peers):.2f}x" if peers else "n/a"
        share = r.get("transfer_share")
        rec = r.get("record_ratio")
        plain = r.get("record_ratio_plain")
        lines.append(f"| {r['workload']} | {r['dtype']} | {r['N']:.0e} | {rate(r['descentlab'])} | "
                     f"{rate(r.get('jax', ''))} | {rate(r.get('jax-direct', ''))} | {rate(r.get('torch'))} | "
                     f"{ratio} | {'' if share is None or np.isnan(share) else f'{share:.1%}'} | "
                     f"{'' if rec is None else f'{rec:.2f}'} | "
                     f"{'' if plain is None else f'{plain:.2f}'} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

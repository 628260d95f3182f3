"""Recording overhead (issue 3): a run end-to-end with and without writing HDF5.

    python benchmarks/hdf5_throughput.py [--particles 1000000] [--steps 1000] [--record-every 10]

"Without recording" advances the same Simulation over the same chunks and drops
the records; "with recording" is ``write_run`` (writer thread, checkpoints, atomic
rename), uncompressed unless ``--compression``. Both include building the initial
positions; the kernel is compiled beforehand. Prints both times, the ratio
(no-recording / recording; acceptance >= 0.6), the file size against the size of
its data, and checks the file against the records of the in-memory run.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import h5py
import numba
import numpy as np

from descentlab.engine.run import Simulation
from descentlab.engine.spec import parse_spec
from descentlab.engine.store import chunk_plan, open_run, write_run


def spec_for(n: int, steps: int, every: int) -> dict:
    return {
        "run": {"particles": n, "steps": steps, "record_every": every, "seed": 1},
        "landscape": {"name": "rosenbrock"},
        "optimizer": {"name": "adam", "lr": 0.01},
        "init": {"scheme": "uniform", "low": -2.0, "high": 2.0},
        "stop": {"grad_tol": 1e-8},
    }


def no_recording(spec: dict, sample: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    t0 = time.perf_counter()
    rs = parse_spec(spec)
    sim = Simulation(rs)
    ends, _ = chunk_plan(rs)
    kept = [sim.initial_records().x[sample]]
    for t1 in ends:
        kept.append(sim.advance(t1).x[sample])
    sim.finish()
    wall = time.perf_counter() - t0
    return wall, np.concatenate(kept, axis=1), np.ascontiguousarray(sim.x.T)


def recording(spec: dict, out: Path, compression: str | None) -> float:
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    write_run(spec, out, progress=False, compression=compression)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--particles", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--record-every", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--compression", choices=["gzip", "lzf"], default=None)
    ap.add_argument("--dir", default=None, help="directory for the file (default: a temporary one)")
    args = ap.parse_args()
    spec = spec_for(args.particles, args.steps, args.record_every)
    write_run(spec_for(64, 20, 10), Path(tempfile.mkdtemp()) / "warm.h5", progress=False)  # compile

    tmpdir = Path(args.dir or tempfile.mkdtemp(prefix="dl_bench_"))
    tmpdir.mkdir(parents=True, exist_ok=True)
    out = tmpdir / "bench.h5"
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(args.particles, size=min(args.particles, 1000), replace=False))
    t_plain, t_rec = [], []
    for _ in range(args.repeat):
        w, rec_sample, final_x = no_recording(spec, sample)
        t_plain.append(w)
        t_rec.append(recording(spec, out, args.compression))
    rs = parse_spec(spec)
    n, r, d = rs.particles, rs.n_records, rs.dim
    data = n * r * (d + 1) * 8 + n * (2 * d + 2) * 8 + n * (1 + 8)  # trajectory + init/final x, loss, gn, status, stop
    size = out.stat().st_size
    with open_run(out) as f:
        assert f.complete and f.shape == (n, r, d)
        assert np.array_equal(f.trajectory_x[sample, :, :], rec_sample), "trajectory differs from the in-memory run"
        assert np.array_equal(f.final_x[...], final_x), "final positions differ"
        counts = f.status_counts()
    best_plain, best_rec = min(t_plain), min(t_rec)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"numba {numba.__version__} ({numba.get_num_threads()} threads), numpy {np.__version__}, "
          f"h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version})")
    print(f"run: rosenbrock + adam, D={d}, float64, N={n}, steps={rs.steps}, record_every={rs.record_every} "
          f"-> R={r}; chunk plan {chunk_plan(rs)[1]} records per chunk; compression {args.compression}")
    print(f"without recording: {best_plain:.2f} s (runs: {', '.join(f'{t:.2f}' for t in t_plain)})")
    print(f"with recording:    {best_rec:.2f} s (runs: {', '.join(f'{t:.2f}' for t in t_rec)})")
    print(f"ratio without/with: {best_plain / best_rec:.2f}  (acceptance >= 0.60)")
    print(f"file: {size / 1e9:.3f} GB; data {data / 1e9:.3f} GB; overhead {(size - data) / 1e6:.1f} MB "
          f"(dimension scales, 2 checkpoint slots); status {counts}")
    print(f"write rate: {size / best_rec / 1e9:.2f} GB/s of file per second of run")
    out.unlink(missing_ok=True)


if __name__ == "__main__":
    main()

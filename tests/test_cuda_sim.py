"""The CUDA kernels match the CPU kernels: on a real GPU where there is one, else under
Numba's CUDA simulator (marker ``cuda``; in ``make test``).

The simulator must be switched on before Numba is imported, so each check runs
in a subprocess (with ``NUMBA_ENABLE_CUDASIM=1`` unless a GPU is present).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("numba.cuda")


@functools.cache
def cuda_env() -> dict[str, str]:
    """The environment of the CUDA checks: on a machine with a GPU the real device, else the simulator."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    probe = subprocess.run([sys.executable, "-c", "from numba import cuda; print(cuda.is_available())"], env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    return env if probe.stdout.strip() == "True" else {**env, "NUMBA_ENABLE_CUDASIM": "1"}

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import descentlab as dl
    from descentlab.landscapes.registry import LANDSCAPES
    from descentlab.optimizers.registry import OPTIMIZERS
    hyper = json.loads(sys.argv[1])
    runs = [({"name": land}, {"name": opt, **hyper[opt]}, {"grad_tol": 1e-3, "bound": 50.0}, {})
            for land in LANDSCAPES for opt in OPTIMIZERS]
    # a model: an MLP on minibatches of shuffled data, with an lr schedule and two optimizer phases
    runs.append(({"name": "mlp", "hidden": [5], "activation": "tanh"}, {"name": "momentum", "lr": 0.1},
                 {"grad_tol": 0.0}, {"data": {"name": "blobs", "samples": 40, "seed": 1, "standardize": True},
                                     "batch": {"size": 8, "shuffle": True},
                                     "schedule": {"name": "cosine"}}))
    out = {}
    for land, opt, stop, extra in runs:
        run = {"particles": 9, "steps": 12, "record_every": 4, "seed": 2, "dtype": "float64"}
        key = land["name"] + "/" + opt["name"]
        spec = {"run": run, "landscape": land, "optimizer": opt, "stop": stop, **extra}
        if land["name"] == "muller_brown":
            # gradients of O(100) and exp() terms: start between the minima, small steps, a tight bound,
            # so that no exp() overflows (the simulator's Python math raises where a GPU gives inf)
            spec["optimizer"] = {**opt, "lr": min(opt["lr"], 1e-4) if opt["lr"] < 0.1 else 0.05}
            spec["init"] = {"scheme": "uniform", "low": [-0.9, 0.3], "high": [0.5, 1.4]}
            spec["stop"] = {**stop, "bound": 3.0}
        cpu = dl.simulate(spec)
        spec["run"] = {**run, "target": "cuda"}
        try:
            gpu = dl.simulate(spec)
        except Exception as exc:
            out[key] = {"error": repr(exc)[-300:]}
            continue
        rel = lambda a, b: float(np.max(np.abs(a - b) / (1 + np.abs(a)), initial=0.0))
        out[key] = {
            "x": rel(cpu.trajectory_x, gpu.trajectory_x), "loss": rel(cpu.trajectory_loss, gpu.trajectory_loss),
            "final": rel(cpu.final_x, gpu.final_x),
            "bits": bool(np.array_equal(cpu.trajectory_x, gpu.trajectory_x, equal_nan=True)),
            "status": bool(np.array_equal(cpu.status, gpu.status)),
            "stop": bool(np.array_equal(cpu.stop_step, gpu.stop_step)),
            "outcomes": cpu.status_counts(),
        }
    print(json.dumps(out))
    """
)

#: Hyperparameters per optimizer: small steps, so that most particles keep running for the 12 steps.
HYPER = {
    "sgd": {"lr": 1e-3}, "adam": {"lr": 1e-2, "amsgrad": True}, "adamw": {"lr": 1e-2, "weight_decay": 0.1},
    "momentum": {"lr": 1e-3, "momentum": 0.9}, "nesterov": {"lr": 1e-3}, "adagrad": {"lr": 1e-2},
    "rmsprop": {"lr": 1e-3}, "langevin": {"lr": 1e-3}, "newton": {"lr": 0.5}, "saddle_free_newton": {"lr": 0.5},
}  # fmt: skip


@pytest.fixture(scope="module")
def cpu_vs_cuda() -> dict[str, dict]:
    """Every landscape x optimizer (and a model run) on the CPU and on CUDA (simulated), in one process."""
    env = cuda_env()
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(HYPER)], env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.cuda
def test_every_landscape_and_optimizer_matches_cpu_under_the_simulator(cpu_vs_cuda: dict[str, dict]) -> None:
    from descentlab.landscapes.registry import LANDSCAPES
    from descentlab.optimizers.registry import OPTIMIZERS

    assert set(cpu_vs_cuda) == {f"{a}/{b}" for a in LANDSCAPES for b in OPTIMIZERS} | {"mlp/momentum"}
    for key, r in cpu_vs_cuda.items():
        assert "error" not in r, (key, r)
        # f64: <= 1e-12 relative (the math is the same code; only the compiler differs)
        assert max(r["x"], r["loss"], r["final"]) <= 1e-12, (key, r)
        assert r["status"] and r["stop"], (key, r)
    # the comparison covers more than "everything stopped at once": most runs keep particles running
    running = sum(1 for r in cpu_vs_cuda.values() if r["outcomes"].get("ran all steps", 0) > 0)
    assert running >= 0.8 * len(cpu_vs_cuda)


@pytest.mark.cuda
def test_langevin_noise_is_bit_identical_under_the_simulator(cpu_vs_cuda: dict[str, dict]) -> None:
    """The counter-based RNG draws the same numbers on both targets: Langevin trajectories agree to the bit
    on landscapes whose math has no transcendental functions (where compilers may round differently)."""
    for land in ("quadratic", "himmelblau", "rosenbrock", "double_well", "saddle", "monkey_saddle", "product"):
        assert cpu_vs_cuda[f"{land}/langevin"]["bits"], land


def test_cuda_target_without_a_gpu_is_a_clear_error() -> None:
    code = textwrap.dedent(
        """
        import descentlab as dl
        from descentlab.kernels.cuda import CudaUnavailable
        try:
            dl.simulate({"run": {"particles": 4, "steps": 2, "target": "cuda"},
                         "landscape": {"name": "himmelblau"}, "optimizer": {"name": "sgd"}})
        except CudaUnavailable as exc:
            print("CLEAR:", exc)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    if "CLEAR:" not in proc.stdout:
        pytest.skip("a CUDA GPU is present on this machine")
    assert "run.target" in proc.stdout and "cpu" in proc.stdout


SCRIPT_RESUME = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import h5py
    import numpy as np
    import descentlab as dl
    from descentlab.engine.store import write_run
    from descentlab.engine.run import Simulation
    from descentlab.engine.spec import parse_spec
    tmp = Path(sys.argv[1])
    spec = {"run": {"particles": 20, "steps": 30, "record_every": 5, "seed": 4, "dtype": "float64"},
            "landscape": {"name": "himmelblau"}, "optimizer": {"name": "adam", "lr": 0.05},
            "stop": {"grad_tol": 1e-3, "bound": 50.0}}
    on = lambda target: {**spec, "run": {**spec["run"], "target": target}}

    def contents(path):
        out = {}
        with h5py.File(path, "r") as f:
            f.visititems(lambda n, o: out.__setitem__(n, o[...]) if isinstance(o, h5py.Dataset) else None)
        return {k: v for k, v in out.items() if not k.startswith("checkpoint/")}

    def same(a, b, tol=0.0):
        # the same datasets: integers (status, stop steps, ...) equal, reals within tol relative
        ca, cb = contents(a), contents(b)
        if sorted(ca) != sorted(cb):
            return False
        for k in ca:
            x, y = ca[k], cb[k]
            if x.dtype.kind == "f":
                if not np.all((np.abs(x - y) <= tol * (1 + np.abs(x))) | (np.isnan(x) & np.isnan(y))):
                    return False
            elif not np.array_equal(x, y):
                return False
        return True

    class Stop(Exception):
        pass

    def stop_at(k):
        def cb(step):
            if step >= k:
                raise Stop
        return cb

    report = {}
    write_run(on("cpu"), tmp / "cpu.h5", progress=False)
    write_run(on("cuda"), tmp / "cuda.h5", progress=False)
    report["cuda_file_as_cpu"] = same(tmp / "cpu.h5", tmp / "cuda.h5", 1e-12)
    # the state stays on the device over 6 chunks; a checkpoint after each brings it back to the host
    write_run(on("cuda"), tmp / "cuda-chunked.h5", progress=False, chunk_steps=5, checkpoint_every=0)
    report["cuda_chunked_file"] = same(tmp / "cuda.h5", tmp / "cuda-chunked.h5")  # bit for bit
    # resume across targets, both ways
    for first, then in (("cpu", "cuda"), ("cuda", "cpu")):
        out = tmp / f"{first}-{then}.h5"
        try:
            write_run(on(first), out, progress=False, chunk_steps=5, checkpoint_every=0, on_checkpoint=stop_at(15))
        except Stop:
            pass
        write_run(on(then), out, resume=True, progress=False, chunk_steps=10)
        report[f"resume_{first}_then_{then}"] = same(tmp / "cpu.h5", out, 1e-12)
    # a chunk transfers the records only: the device copy is what the next chunk starts from
    sim = Simulation(parse_spec(on("cuda")))
    sim.advance(10)
    host_x = sim._host.x.copy()  # stale on purpose: not read through sim.x
    sim.advance(20)
    report["host_untouched_between_chunks"] = bool(np.array_equal(sim._host.x, host_x))
    ref = Simulation(parse_spec(on("cpu")))
    ref.advance(10)
    ref.advance(20)
    close = lambda u, v: bool(np.all(np.abs(u - v) <= 1e-12 * (1 + np.abs(u))))
    report["state_after_two_chunks"] = close(ref.x, sim.x) and close(ref.state, sim.state)
    report["host_read_is_current"] = not np.array_equal(sim.x, host_x)
    # a shard on the GPU is rows a:b of the whole GPU run, bit for bit (particle ids, not positions, key the RNG)
    whole = dl.simulate({**on("cuda"), "optimizer": {"name": "langevin", "lr": 0.01}})
    part = dl.simulate({**on("cuda"), "optimizer": {"name": "langevin", "lr": 0.01}}, particles=(5, 15))
    report["shard_rows"] = bool(np.array_equal(whole.trajectory_x[5:15], part.trajectory_x)
                                and np.array_equal(whole.status[5:15], part.status))
    # records come back per piece of particles while the next piece computes (kernels/cuda.py): several
    # chunks not aligned with the records, a switch whose phase boundary falls inside a chunk, the record of
    # step 0 in the first chunk; split into 4 launches, as one launch, and on the CPU
    import descentlab.kernels.cuda as kc
    sw = {**spec, "run": {**spec["run"], "record_every": 3},
          "optimizer": {"name": "switch", "phases": [{"name": "langevin", "lr": 0.01, "steps": 13},
                                                     {"name": "adam", "lr": 0.05}]}}
    sw_on = lambda target: {**sw, "run": {**sw["run"], "target": target}}
    write_run(sw_on("cpu"), tmp / "sw-cpu.h5", progress=False, chunk_steps=7)
    saved = kc.PIECE_PARTICLES
    kc.PIECE_PARTICLES = 1 << 40  # one launch per chunk and phase: nothing overlapped
    report["one_piece"] = kc.piece_bounds(20)
    write_run(sw_on("cuda"), tmp / "sw-one.h5", progress=False, chunk_steps=7)
    kc.PIECE_PARTICLES = 4
    report["pieces"] = kc.piece_bounds(20)
    write_run(sw_on("cuda"), tmp / "sw-pieces.h5", progress=False, chunk_steps=7)
    kc.PIECE_PARTICLES = saved
    with h5py.File(tmp / "sw-pieces.h5", "r") as f:
        report["records"] = int(f["trajectory/x"].shape[1])  # steps 0, 3, ..., 30
    report["pieces_as_one_launch"] = same(tmp / "sw-one.h5", tmp / "sw-pieces.h5")  # bit for bit
    report["pieces_as_cpu"] = same(tmp / "sw-cpu.h5", tmp / "sw-pieces.h5", 1e-12)
    print(json.dumps(report))
    """
)


@pytest.mark.cuda
def test_state_stays_on_the_device_and_runs_resume_across_targets(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = cuda_env()
    proc = subprocess.run([sys.executable, "-c", SCRIPT_RESUME, str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"cuda_file_as_cpu": True, "cuda_chunked_file": True, "resume_cpu_then_cuda": True,
                      "resume_cuda_then_cpu": True, "host_untouched_between_chunks": True,
                      "state_after_two_chunks": True, "host_read_is_current": True, "shard_rows": True,
                      "one_piece": [0, 20], "pieces": [0, 5, 10, 15, 20], "records": 11,
                      "pieces_as_one_launch": True, "pieces_as_cpu": True}  # fmt: skip

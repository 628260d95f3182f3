"""The CUDA kernels, run under Numba's CUDA simulator, match the CPU kernels.

The simulator must be switched on before Numba is imported, so each check runs
in a subprocess with ``NUMBA_ENABLE_CUDASIM=1``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("numba.cuda")

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import descentlab as dl
    out = {}
    for land, opt in json.loads(sys.argv[1]):
        spec = {"run": {"particles": 24, "steps": 24, "record_every": 6, "seed": 2},
                "landscape": {"name": land}, "optimizer": opt,
                "stop": {"grad_tol": 1e-2, "bound": 20.0}}
        cpu = dl.simulate(spec)
        spec["run"]["target"] = "cuda"
        gpu = dl.simulate(spec)
        err = float(np.max(np.abs(cpu.trajectory_x - gpu.trajectory_x) / (1 + np.abs(cpu.trajectory_x))))
        out[land + "/" + opt["name"]] = [err, bool(np.array_equal(cpu.status, gpu.status)),
                                         bool(np.array_equal(cpu.stop_step, gpu.stop_step))]
    print(json.dumps(out))
    """
)

PAIRS = [
    ("himmelblau", {"name": "adam", "lr": 0.05, "amsgrad": True}),
    ("rosenbrock", {"name": "sgd", "lr": 2e-3, "momentum": 0.9, "nesterov": True}),
]


@pytest.mark.cuda
def test_cuda_kernels_match_cpu_under_the_simulator(tmp_path: Path) -> None:
    # Its own on-disk cache: a simulator process never shares compiled CPU kernels with the others.
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "NUMBA_CACHE_DIR": str(tmp_path / "numba_cache")}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(PAIRS)], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(result) == len(PAIRS)
    for key, (err, same_status, same_stop) in result.items():
        assert err < 1e-12, key
        assert same_status and same_stop, key


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

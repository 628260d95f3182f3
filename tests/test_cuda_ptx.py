"""The CUDA kernels compile for a real GPU (PTX for compute capability 9.0), checked without one.

The CUDA simulator (tests/test_cuda_sim.py) runs the kernels as Python and never compiles them:
a construct that Numba's CUDA target rejects (or a device function it cannot type) would pass
there and fail on the first GPU. Here every kernel a run launches - the run kernel of each
optimizer phase, ``evaluate``, ``hessian`` - is compiled to PTX with libNVVM
(:func:`descentlab.engine.run.cuda_ptx`), in float32 and float64, for landscape x optimizer
pairs that cover the Hessian (Newton), the RNG (Langevin; minibatches of a model), a switch
of optimizers and the MLP model.

libNVVM comes with ``numba-cuda[cu13]`` (the ``test`` extra: the ``nvidia-nvvm``, ``nvidia-cuda-nvrtc``
and ``nvidia-cuda-runtime`` wheels - checked with the system toolkit hidden) or with a CUDA
toolkit; the test skips, saying so, only where libNVVM is not found. No GPU and no driver needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("numba.cuda")

SCRIPT = textwrap.dedent(
    """
    import json, sys
    try:
        from numba.cuda.cudadrv import nvvm
        nvvm.NVVM()
    except Exception as exc:
        print(json.dumps({"no_nvvm": repr(exc)[:500]}))
        sys.exit(0)
    from descentlab.engine.run import cuda_ptx
    from descentlab.engine.spec import parse_spec
    mlp = {"name": "mlp", "hidden": [5], "activation": "tanh"}
    data = {"data": {"name": "blobs", "samples": 40, "seed": 1}, "batch": {"size": 8, "shuffle": True}}
    cases = {
        "rosenbrock/adam": ({"name": "rosenbrock"}, {"name": "adam", "lr": 1e-2}, {}),
        "himmelblau/newton": ({"name": "himmelblau"}, {"name": "newton", "lr": 0.5}, {}),
        "double_well/langevin": ({"name": "double_well"}, {"name": "langevin", "lr": 1e-3}, {}),
        "quadratic/switch": ({"name": "quadratic"}, {"name": "switch", "phases": [
            {"name": "sgd", "lr": 1e-2, "momentum": 0.9, "steps": 5}, {"name": "adam", "lr": 1e-2}]}, {}),
        "mlp/momentum": (mlp, {"name": "momentum", "lr": 0.1}, data),
    }
    out = {}
    for key, (land, opt, extra) in cases.items():
        for dtype in ("float32", "float64"):
            spec = {"run": {"particles": 4, "steps": 10, "dtype": dtype, "target": "cuda"}, "landscape": land,
                    "optimizer": opt, "stop": {"grad_tol": 1e-6, "bound": 100.0}, **extra}
            ptx = cuda_ptx(parse_spec(spec), (9, 0))
            out[f"{key}/{dtype}"] = {name: {
                "target": [ln.split()[1] for ln in text.splitlines() if ln.startswith(".target")],
                "entries": sum(1 for ln in text.splitlines() if ln.startswith(".visible .entry")),
                "extern_funcs": sum(1 for ln in text.splitlines() if ln.startswith(".extern .func")),
                "chars": len(text),
            } for name, text in ptx.items()}
    print(json.dumps(out))
    """
)


@pytest.mark.cuda
def test_every_cuda_kernel_compiles_to_ptx_for_sm90() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}  # the real CUDA target
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if "no_nvvm" in report:
        pytest.skip(f"libNVVM not found (pip install 'numba-cuda[cu13]' or a CUDA toolkit): {report['no_nvvm']}")
    assert len(report) == 10
    for key, kernels in report.items():
        phases = 2 if "switch" in key else 1
        assert sorted(kernels) == sorted([f"run[{j}]" for j in range(phases)] + ["evaluate", "hessian"]), key
        for name, k in kernels.items():
            assert k["target"] == ["sm_90"], (key, name, k)
            assert k["entries"] == 1, (key, name, k)  # the kernel itself
            assert k["extern_funcs"] == 0, (key, name, k)  # every device function it calls is in the module
            assert k["chars"] > 2000, (key, name, k)

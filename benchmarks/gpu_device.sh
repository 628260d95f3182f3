#!/usr/bin/env bash
# The GPU checks of issue 13 as ONE prepared run on a lent device machine (an NVIDIA H200 with the
# workplace's image: Python 3.12, numba, numba-cuda, JAX and torch with CUDA; no network).
#
# Here, once (the image lacks pydantic; .whl/ is git-ignored and travels with `carry`):
#   .venv/bin/pip download --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       --implementation cp -d .whl "pydantic>=2.6"
# Then the device tool's run, with carry [".whl"] and timeout_s 600:
#   bash benchmarks/gpu_device.sh
# What comes back under $OUT: the CUDA tests' log, the benchmark's log and its table
# (RESULTS_gpu.md, to paste into benchmarks/RESULTS.md's GPU section).
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src" NUMBA_CACHE_DIR=/tmp/numba_cache
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
PY=${PY:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --find-links .whl .whl/*.whl 2>&1 | tail -3
fi
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  $PY -c "import numba, numba_cuda, jax, torch; from numba import cuda; print('numba', numba.__version__, \
'numba-cuda', numba_cuda.__version__, 'jax', jax.__version__, jax.devices(), 'torch', torch.__version__, \
torch.cuda.is_available(), cuda.get_current_device().name)"
} 2>&1 | tee "$OUT/machine.txt"
# 1. the CUDA tests on the real GPU (they use it when Numba sees one; the same tests run under the
#    simulator in `make test`): every landscape x optimizer pair and a model against the CPU
timeout 200 $PY -m pytest -q -x -p no:cacheprovider tests/test_cuda_sim.py tests/test_cuda_ptx.py 2>&1 \
  | tee "$OUT/cuda_tests.log"
# 2. the benchmark (under 5 minutes on one GPU): descentlab on CUDA beside JAX and torch
timeout 330 $PY benchmarks/gpu.py --markdown "$OUT/RESULTS_gpu.md" 2>&1 | tee "$OUT/gpu.log"

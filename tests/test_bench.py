"""``descentlab bench``: a thin wrapper around ``benchmarks/run.py`` (smoke test on a tiny workload)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from descentlab.cli import benchmarks_dir, main

REPO = Path(__file__).resolve().parents[1]


def _call(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()


def test_bench_finds_the_repository_suite():
    assert benchmarks_dir() == REPO / "benchmarks"


def test_bench_runs_a_tiny_workload(tmp_path):
    raw = tmp_path / "bench.json"
    rc, out, err = _call("bench", "--sizes", "300", "--dtypes", "float64", "--steps", "20", "--repeats", "1",
                         "--peers", "none", "--dim", "0", "--no-compile", "--json", str(raw))  # fmt: skip
    assert rc == 0, err
    rows = json.loads(raw.read_text())["rows"]
    assert {(r["impl"], r["n"], r["dtype"], r["workload"]) for r in rows} == {
        ("descentlab", 300, "float64", "rosenbrock-2d"),
        ("descentlab simulate()", 300, "float64", "rosenbrock-2d"),
    }
    assert all(r["rate"] > 0 for r in rows)
    assert "Rosenbrock + Adam" in out


def test_bench_bad_arguments_exit_2():
    rc, _, err = _call("bench", "--dtypes", "float16", "--peers", "none", "--dim", "0", "--no-compile")
    assert rc == 2 and "float16" in err


def test_bench_without_the_repository_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DESCENTLAB_BENCHMARKS", str(tmp_path))
    rc, _, err = _call("bench", "--quick")
    assert rc == 2 and "benchmarks/ folder" in err and "Traceback" not in err


def test_bench_isa_runs_again_limited_to_avx2(tmp_path):
    """--isa avx2 runs the suite again in a fresh process whose environment limits every implementation to
    AVX2 (the machine table says so), and under that environment Numba's code has no AVX-512 registers."""
    import os
    import subprocess
    import sys

    sys.path.insert(0, str(benchmarks_dir()))
    import suite

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    env.pop(suite.ISA_MARK, None)
    code = ("import sys; from descentlab.cli import main; "
            "sys.exit(main(['bench', '--isa', 'avx2', '--quick', '--peers', 'none', '--no-compile', '--dim', '0', "
            "'--dtypes', 'float32', '--sizes', '1000']))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| instruction set used | avx2 for every implementation" in out.stdout
    check = ("import numba, numpy as np; assert numba.config.CPU_NAME == 'haswell'; "
             "f = numba.njit(lambda a: a * 2.0 + 1.0); f(np.ones(64)); "
             "asm = f.inspect_asm(f.signatures[0]); assert 'ymm' in asm and 'zmm' not in asm, 'not AVX2 code'")
    isa = {**env, **suite.ISA_ENV["avx2"]}
    done = subprocess.run([sys.executable, "-c", check], env=isa, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

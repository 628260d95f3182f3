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

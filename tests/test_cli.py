"""The CLI: exit codes (0 ok, 2 bad input, 1 internal), one-line messages naming the
field, no traceback, nothing written on bad input; info, catalogues (issue 3)."""

from __future__ import annotations

import contextlib
import io
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from descentlab.cli import main

GOOD: dict[str, Any] = {
    "run": {"particles": 50, "steps": 40, "record_every": 10, "seed": 3},
    "landscape": {"name": "rosenbrock"},
    "optimizer": {"name": "adam", "lr": 0.01},
    "init": {"scheme": "uniform", "low": -2.0, "high": 2.0},
    "stop": {"grad_tol": 1e-6},
}


def _val(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_val(x) for x in v) + "]"
    return repr(v)


def to_toml(spec: dict[str, Any]) -> str:
    lines = []
    for table, body in spec.items():
        if not isinstance(body, dict):
            lines.append(f"{table} = {_val(body)}")
            continue
        lines.append(f"[{table}]")
        lines += [f'"{k}" = {_val(v)}' for k, v in body.items()]
    # scalar "tables" must come before any [table] header in TOML
    return "\n".join(sorted(lines, key=lambda s: not (" = " in s and not s.startswith(("[", '"'))))) + "\n"


def call(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()


def deep(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: dict(v) if isinstance(v, dict) else v for k, v in spec.items()}


# --------------------------------------------------------------------------- generated bad specs

texts = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)
neg_float = st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False)
not_positive_int = st.integers(max_value=0, min_value=-(2**62))
nonfinite = st.sampled_from([math.nan, math.inf, -math.inf])
wrong_type = st.one_of(texts, st.booleans(), st.lists(st.integers(0, 3), max_size=3))


@st.composite
def bad_specs(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """(a spec with exactly one bad field, the field the message must name)."""
    spec = deep(GOOD)
    kind = draw(st.integers(0, 22))
    if kind == 0:
        spec["run"]["particles"] = draw(not_positive_int)
        return spec, "run.particles"
    if kind == 1:
        spec["run"]["steps"] = draw(not_positive_int)
        return spec, "run.steps"
    if kind == 2:
        spec["run"]["record_every"] = draw(st.one_of(not_positive_int, st.integers(41, 10**6)))
        return spec, "run.record_every"
    if kind == 3:
        spec["run"][draw(st.sampled_from(["particles", "steps", "seed", "record_every"]))] = v = draw(wrong_type)
        key = next(k for k in spec["run"] if spec["run"][k] is v)
        return spec, f"run.{key}"
    if kind == 4:
        v = draw(texts)
        assume(v not in ("float32", "float64"))
        spec["run"]["dtype"] = v
        return spec, "run.dtype"
    if kind == 5:
        key = draw(texts)
        assume(key not in GOOD["run"] and key not in ("dtype", "target", "chunk_steps"))
        spec["run"][key] = 1
        return spec, f"run.{key}"
    if kind == 6:
        key = draw(texts)
        spec[f"x{key}"] = {"a": 1}
        return spec, f"x{key}"
    if kind == 7:
        spec["optimizer"]["lr"] = draw(st.one_of(neg_float, st.just(0.0), nonfinite))
        return spec, "optimizer.lr"
    if kind == 8:
        v = draw(texts)
        assume(v not in ("sgd", "adam", "adamw", "momentum", "nesterov", "adagrad", "rmsprop", "amsgrad",
                         "langevin", "newton", "sfn", "saddle_free_newton", "switch"))
        spec["optimizer"] = {"name": v}
        return spec, "optimizer.name"
    if kind == 9:
        spec["optimizer"]["eps"] = draw(st.one_of(neg_float, nonfinite))
        return spec, "optimizer.eps"
    if kind == 10:
        spec["optimizer"]["betas"] = draw(st.one_of(
            st.lists(st.floats(0, 0.5), min_size=0, max_size=1), st.lists(st.floats(0, 0.5), min_size=3, max_size=4),
            st.tuples(st.floats(1.0, 9.0), st.floats(0, 0.5)).map(list), st.tuples(st.just(0.9), neg_float).map(list)))
        return spec, "optimizer.betas"
    if kind == 11:
        key = draw(texts)
        assume(key not in ("lr", "betas", "eps", "weight_decay", "amsgrad", "name"))
        spec["optimizer"][key] = 0.5
        return spec, f"optimizer.{key}"
    if kind == 12:
        v = draw(texts)
        assume(v not in ("rosenbrock", "himmelblau"))
        spec["landscape"] = {"name": "zz" + v}
        return spec, "landscape.name"
    if kind == 13:
        spec["landscape"] = {"name": "himmelblau", "dim": draw(st.integers(3, 50))}
        return spec, "landscape.dim"
    if kind == 14:
        spec["landscape"]["dim"] = draw(st.one_of(not_positive_int, texts))
        return spec, "landscape.dim"
    if kind == 15:
        lo = draw(st.floats(-10, 10))
        spec["init"]["low"], spec["init"]["high"] = lo, lo - draw(st.floats(0, 5))
        return spec, "init.low"
    if kind == 16:
        n = draw(st.sampled_from([1, 3, 4, 5]))
        spec["init"][draw(st.sampled_from(["low", "high"]))] = [float(i) - 3 for i in range(n)]
        return spec, "init."
    if kind == 17:
        spec["init"][draw(st.sampled_from(["low", "high"]))] = draw(nonfinite)
        return spec, "init."
    if kind == 18:
        v = draw(texts)
        assume(v not in ("uniform", "normal", "grid", "zeros", "constant", "points"))
        spec["init"]["scheme"] = v
        return spec, "init.scheme"
    if kind == 19:
        spec["stop"]["grad_tol"] = draw(st.one_of(neg_float, nonfinite))
        return spec, "stop.grad_tol"
    if kind == 20:
        spec["stop"]["patience"] = draw(not_positive_int)
        return spec, "stop.patience"
    if kind == 21:
        spec["run"]["particles"] = draw(st.integers(10**10, 10**15))
        return spec, "run.particles"  # memory that cannot fit
    spec["landscape"]["a"] = draw(nonfinite)
    return spec, "landscape.a"


@settings(max_examples=220, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(case=bad_specs(), existing=st.booleans())
def test_generated_bad_specs_exit_2_naming_the_field(tmp_path: Path, case: tuple[dict[str, Any], str],
                                                     existing: bool) -> None:
    spec, field = case
    path = tmp_path / "bad.toml"
    path.write_text(to_toml(spec))
    out = tmp_path / "out.h5"
    if existing:
        out.write_bytes(b"do not touch")
    else:
        out.unlink(missing_ok=True)
    args = ["run", str(path), "-o", str(out), "--quiet"] + (["--overwrite"] if existing else [])
    rc, stdout, stderr = call(*args)
    assert rc == 2, (spec, stdout, stderr)
    msg = stderr.strip()
    assert "\n" not in msg and "Traceback" not in stderr, stderr
    assert msg.startswith("descentlab: error: " + field), (field, msg)
    if existing:
        assert out.read_bytes() == b"do not touch"
    else:
        assert not out.exists()
    assert not (tmp_path / "out.h5.partial").exists()


def _subprocess(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "descentlab.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env={**os.environ})


@pytest.mark.parametrize(("patch", "field"), [
    ({"optimizer": {"name": "adam", "lr": -1.0}}, "optimizer.lr"),
    ({"run": {"particles": 0, "steps": 10}}, "run.particles"),
])
def test_real_process_exit_2_without_traceback(tmp_path: Path, patch: dict[str, Any], field: str) -> None:
    spec = deep(GOOD)
    spec.update(patch)
    (tmp_path / "s.toml").write_text(to_toml(spec))
    proc = _subprocess("run", "s.toml", "-o", "o.h5", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(f"descentlab: error: {field}:")
    assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert not (tmp_path / "o.h5").exists()


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text("[run\nparticles = ")
    rc, _, err = call("run", str(tmp_path / "s.toml"), "-o", str(tmp_path / "o.h5"))
    assert rc == 2 and "not valid TOML" in err and "Traceback" not in err
    rc, _, err = call("run", str(tmp_path / "none.toml"), "-o", str(tmp_path / "o.h5"))
    assert rc == 2 and "cannot read" in err
    rc, _, err = call("run", str(tmp_path / "s.toml"))  # missing -o
    assert rc == 2
    rc, _, err = call("info", str(tmp_path / "none.h5"))
    assert rc == 2 and err.startswith("descentlab: error: PATH")
    rc, _, err = call("info", str(tmp_path / "s.toml"))
    assert rc == 2 and "Traceback" not in err


def test_run_info_overwrite(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(to_toml(GOOD))
    out = tmp_path / "o.h5"
    rc, stdout, err = call("run", str(tmp_path / "s.toml"), "-o", str(out))
    assert rc == 0, err
    assert "50 particles x 40 steps" in stdout
    with h5py.File(out, "r") as f:
        assert bool(f.attrs["complete"]) and f["trajectory/x"].shape == (50, 5, 2)
    before = out.read_bytes()
    rc, _, err = call("run", str(tmp_path / "s.toml"), "-o", str(out))
    assert rc == 2 and "--overwrite" in err and out.read_bytes() == before
    rc, _, err = call("run", str(tmp_path / "s.toml"), "-o", str(out), "--overwrite", "--quiet", "--chunk-steps", "3",
                      "--threads", "1")
    assert rc == 0, err
    rc, stdout, _ = call("info", str(out))
    assert rc == 0
    for word in ("complete", "rosenbrock", "adam", "particles   50", "status", "/trajectory/x", "(50, 5, 2)"):
        assert word in stdout, word
    rc, _, err = call("run", str(tmp_path / "s.toml"), "-o", str(out), "--threads", "999")
    assert rc == 2 and "--threads" in err


def test_catalogues() -> None:
    rc, stdout, _ = call("landscapes")
    assert rc == 0 and "rosenbrock" in stdout and "a=1.0" in stdout and "himmelblau" in stdout
    rc, stdout, _ = call("optimizers")
    assert rc == 0 and "adam" in stdout and "lr=0.001" in stdout and "betas=[0.9, 0.999]" in stdout


def test_demo_small(tmp_path: Path) -> None:
    rc, _, err = call("demo", "-o", str(tmp_path / "d"), "--particles", "200", "--steps", "50")
    assert rc == 0, err
    assert (tmp_path / "d" / "himmelblau_trajectories.png").stat().st_size > 10_000
    assert len(list((tmp_path / "d").glob("himmelblau_*.h5"))) == 3

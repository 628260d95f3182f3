"""Time to the first result: cold and cached kernel builds, beside JAX's jit time in the same run.

Each case runs in a fresh Python process (so nothing is compiled in memory) and
reports the seconds from the call of ``simulate`` to its result, minus the
simulation itself: what a user waits for the kernels. ``import`` time is
reported on its own. Cases (one dtype each):

* ``cold``: empty Numba cache - everything is compiled (the parallel skeleton,
  shared by every landscape and optimizer, and the landscape's and optimizer's
  own functions);
* ``second optimizer``: in the same process, another optimizer on the same landscape;
* ``new pair``: a new process whose cache holds the skeleton (any earlier run on
  this machine) but not this landscape x optimizer;
* ``warm``: a new process, everything cached;
* ``mlp``: a 2-16-16-2 tanh MLP trained on moons with minibatches, empty cache;
* ``jax``: ``jit(scan)`` of the direct vectorised Rosenbrock + Adam in a fresh process
  (first call minus a second call), if JAX is installed.

python benchmarks/compile_time.py [--dtypes float64,float32] [--load K]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

CASE = textwrap.dedent(
    """
    import json, sys, time
    t0 = time.perf_counter()
    import descentlab as dl
    t_import = time.perf_counter() - t0
    dtype = sys.argv[1]
    def spec(land, opt, n=1000, steps=10):
        return {"run": {"particles": n, "steps": steps, "record_every": steps, "seed": 1, "dtype": dtype},
                "landscape": {"name": land}, "optimizer": {"name": opt, "lr": 1e-3}}
    out = {"import": t_import}
    for key, land, opt in json.loads(sys.argv[2]):
        t = time.perf_counter()
        if land == "mlp":
            s = {"run": {"particles": 64, "epochs": 1, "seed": 1, "dtype": dtype},
                 "landscape": {"name": "mlp", "hidden": [16, 16], "activation": "tanh", "loss": "cross_entropy"},
                 "data": {"name": "moons", "samples": 256}, "batch": {"size": 32},
                 "optimizer": {"name": opt, "lr": 0.1}}
            r = dl.simulate(s)
        else:
            r = dl.simulate(spec(land, opt))
        out[key] = time.perf_counter() - t - r.wall_time
    print(json.dumps(out))
    """
)

JAX_CASE = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    t0 = time.perf_counter()
    import jax, jax.numpy as jnp
    if sys.argv[1] == "float64":
        jax.config.update("jax_enable_x64", True)
    t_import = time.perf_counter() - t0
    dt = jnp.float64 if sys.argv[1] == "float64" else jnp.float32
    def grad(x):
        a, b = x[:, 0], x[:, 1]
        return jnp.stack([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)], axis=1)
    def step(carry, t):
        x, m, v = carry
        g = grad(x)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        x = x - 1e-3 / (1 - 0.9 ** t) * m / (jnp.sqrt(v) / jnp.sqrt(1 - 0.999 ** t) + 1e-8)
        return (x, m, v), None
    @jax.jit
    def run(x):
        z = jnp.zeros_like(x)
        (x, _, _), _ = jax.lax.scan(step, (x, z, z), jnp.arange(1, 11, dtype=dt))
        return x
    x = jnp.asarray(np.random.default_rng(0).uniform(-2, 2, (1000, 2)), dtype=dt)
    t = time.perf_counter(); run(x).block_until_ready(); first = time.perf_counter() - t
    t = time.perf_counter(); run(x).block_until_ready(); second = time.perf_counter() - t
    print(json.dumps({"import": t_import, "jit": first - second}))
    """
)


def _python(code: str, args: list[str], cache: Path) -> dict[str, float]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(dtype: str) -> dict[str, float]:
    """Seconds for each case of the module docstring, for ``dtype``."""
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "numba"
        res: dict[str, float] = {}
        a = _python(CASE, [dtype, json.dumps([["cold", "rosenbrock", "adam"], ["second", "rosenbrock", "sgd"]])], cache)
        res.update({"import": a["import"], "cold": a["cold"], "second optimizer": a["second"]})
        b = _python(CASE, [dtype, json.dumps([["new", "himmelblau", "rmsprop"]])], cache)
        res["new pair"] = b["new"]
        c = _python(CASE, [dtype, json.dumps([["warm", "rosenbrock", "adam"]])], cache)
        res["warm"] = c["warm"]
        d = _python(CASE, [dtype, json.dumps([["mlp", "mlp", "sgd"]])], Path(tmp) / "numba-mlp")
        res["mlp cold"] = d["mlp"]
        try:
            j = _python(JAX_CASE, [dtype], cache)
            res["jax jit"] = j["jit"]
            res["jax import"] = j["import"]
        except RuntimeError as exc:
            print(f"jax skipped: {str(exc).splitlines()[-1]}", file=sys.stderr)
    return res


def markdown(rows: dict[str, dict[str, float]], note: str) -> str:
    cases = ["cold", "second optimizer", "new pair", "warm", "mlp cold", "jax jit", "import", "jax import"]
    lines = [
        "| dtype | " + " | ".join(cases) + " |",
        "|---|" + "---:|" * len(cases),
    ]
    for dtype, r in rows.items():
        lines.append(f"| {dtype} | " + " | ".join(f"{r[c]:.2f}" if c in r else "-" for c in cases) + " |")
    return "\n".join(lines) + ("\n\n" + note if note else "") + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dtypes", default="float64,float32")
    p.add_argument("--note", default="", help="a line printed under the table (machine, load)")
    p.add_argument("--load", type=int, default=0, metavar="K", help="K busy background processes meanwhile")
    args = p.parse_args(argv)
    from suite import BackgroundLoad  # benchmarks/ is on sys.path (this script's folder)

    rows = {}
    with BackgroundLoad(args.load):
        for dtype in args.dtypes.split(","):
            rows[dtype] = measure(dtype)
            print(dtype, {k: round(v, 2) for k, v in rows[dtype].items()}, flush=True)
    print(markdown(rows, args.note))
    return 0


if __name__ == "__main__":
    sys.exit(main())

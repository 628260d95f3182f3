"""Spec validation holes found while building the CLI (issue 3)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from descentlab.engine.spec import SpecError, parse_spec


def base(**tables: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"run": {"particles": 10, "steps": 100}, "landscape": {"name": "himmelblau"},
                            "optimizer": {"name": "adam"}}
    spec.update(tables)
    return spec


@pytest.mark.parametrize(("tables", "field"), [
    ({"init": {"low": 10.0}}, "init.low"),  # above the default high (5)
    ({"init": {"high": -6.0}}, "init.low"),  # below the default low (-5)
    ({"init": {"low": [0.0, math.nan], "high": 1.0}}, "init.low.1"),  # element of a list named
    ({"init": {"low": math.nan, "high": 1.0}}, "init.low"),
    ({"init": {"low": [0.0, 0.0, 0.0], "high": 1.0}}, "init.low"),  # wrong dimension of the box
    ({"stop": {"grad_tol": math.inf}}, "stop.grad_tol"),
    ({"stop": {"grad_tol": math.nan}}, "stop.grad_tol"),
    ({"run": {"particles": True, "steps": 10}}, "run.particles"),
    ({"run": {"particles": 0, "steps": 10}}, "run.particles"),
    ({"run": {"particles": 10, "steps": 10, "record_every": 11}}, "run.record_every"),
    ({"run": {"particles": 10**13, "steps": 10}}, "run.particles"),
    ({"optimizer": {"name": "adam", "lr": -0.1}}, "optimizer.lr"),
    ({"optimizer": {"name": "adam", "lr": math.nan}}, "optimizer.lr"),
    ({"optimizer": {"name": "adam", "foo": 1.0}}, "optimizer.foo"),
])
def test_refused_with_field(tables: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(base(**tables))
    msg = str(info.value)
    assert msg.startswith(field + ":"), msg
    assert ".float" not in msg.split(":")[0] and "[" not in msg.split(":")[0]


def test_defaults_still_accepted() -> None:
    rs = parse_spec(base(init={"low": -1.0}))
    assert rs.init["low"] == -1.0
    assert parse_spec(base(stop={"grad_tol": 0.0})).grad_tol == 0.0


@pytest.mark.parametrize("spec", [
    {"run": {"particles": 4, "steps": 10}, "landscape": {"name": "himmelblau"}, "optimizer": {"name": "adam"}},
    {"run": {"particles": 4, "epochs": 5, "record_every_epochs": 1}, "landscape": {"name": "mlp", "hidden": [3]},
     "data": {"name": "blobs", "samples": 60}, "batch": {"size": 8}, "optimizer": {"name": "sgd"}},
    {"run": {"particles": 4, "epochs": 5}, "landscape": {"name": "logistic_regression"},
     "data": {"name": "moons", "samples": 50},
     "batch": {"schedule": [{"size": 4, "epochs": 2}, {"size": 16, "epochs": 1}, {"size": 32}]},
     "optimizer": {"name": "sgd"}},
], ids=["analytic", "model-epochs", "model-batch-schedule"])  # fmt: skip
def test_resolved_spec_parses_to_itself(spec: dict[str, Any]) -> None:
    # a run file stores the resolved spec; the analysis and resume parse it again
    rs = parse_spec(spec)
    again = parse_spec(json.loads(json.dumps(rs.resolved)))
    assert again.resolved == rs.resolved
    assert (again.steps, again.record_every, again.dim) == (rs.steps, rs.record_every, rs.dim)
    if rs.finite_sum is not None:
        assert (again.finite_sum.sizes, again.finite_sum.epochs) == (rs.finite_sum.sizes, rs.finite_sum.epochs)


def test_dtype_defaults_to_float32_on_cuda_only() -> None:
    assert parse_spec(base()).dtype == "float64"
    cuda = base(run={"particles": 10, "steps": 100, "target": "cuda"})
    rs = parse_spec(cuda)  # parsing needs no GPU
    assert rs.dtype == "float32" and rs.resolved["run"]["dtype"] == "float32"
    cuda["run"]["dtype"] = "float64"
    assert parse_spec(cuda).dtype == "float64"


@pytest.mark.parametrize(
    ("landscape", "message"),
    [
        ({"name": "rosenbrock", "a": "one"}, "landscape.a: expected a number, got 'one'"),
        ({"name": "rosenbrock", "b": float("inf")}, "landscape.b: must be finite"),
        ({"name": "random", "features": 2.5}, "landscape.features: expected an integer, got 2.5"),
        ({"name": "rosenbrock", "dim": 1}, "landscape.dim: rosenbrock needs dim >= 2"),
        ({"name": "himmelblau", "dim": 3}, "landscape.dim: landscape 'himmelblau' has dimension 2, not 3"),
        ({"name": "quadratic", "dim": 0}, "landscape.dim: expected an integer >= 1, got 0"),
        ({"name": "quadratic", "tilt": 1.0}, "landscape.tilt:"),
    ],
)
def test_landscape_table_errors_name_the_field(landscape, message):
    """The landscape validates its own table (Landscape.validate); spec.py only prefixes the field."""
    spec = {"run": {"particles": 4, "steps": 2}, "landscape": landscape, "optimizer": {"name": "sgd"}}
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    assert str(info.value).startswith(message), str(info.value)

"""The analysis rebuilds a run's landscape from its stored spec; when the rest of the spec no longer
parses it says why (a warning naming the error) instead of hiding it."""

from __future__ import annotations

import logging

import pytest

from descentlab.analysis.pipeline import _landscape
from descentlab.engine.store import StoreError


def test_a_spec_that_no_longer_parses_is_analysed_by_its_landscape_and_says_why(caplog):
    spec = {"run": {"particles": 1, "steps": 1}, "landscape": {"name": "himmelblau", "dim": 2},
            "optimizer": {"name": "retired_optimizer"}}  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="descentlab"):
        lm = _landscape(spec)
    assert lm.landscape.name == "himmelblau" and lm.dim == 2
    assert "does not parse" in caplog.text and "retired_optimizer" in caplog.text


def test_a_landscape_that_cannot_be_rebuilt_is_refused():
    spec = {"run": {"particles": 1, "steps": 1}, "landscape": {"name": "no_such_landscape", "dim": 2},
            "optimizer": {"name": "sgd"}}  # fmt: skip
    with pytest.raises(StoreError, match="cannot be rebuilt"):
        _landscape(spec)

"""Registry of landscapes: name -> :class:`Landscape`."""

from __future__ import annotations

import numpy as np

from . import analytic as a
from .base import Landscape

LANDSCAPES: dict[str, Landscape] = {}


def register(land: Landscape) -> Landscape:
    if land.name in LANDSCAPES:
        raise ValueError(f"landscape {land.name!r} registered twice")
    LANDSCAPES[land.name] = land
    return land


register(
    Landscape(
        name="himmelblau",
        description="Himmelblau's function: four minima with f = 0",
        dim=2,
        params={},
        value=a.himmelblau_value,
        grad=a.himmelblau_grad,
        hess=a.himmelblau_hess,
        init_box=(-5.0, 5.0),
        minima=lambda p, d: [
            ("(3, 2)", np.array([3.0, 2.0])),
            ("(-2.805, 3.131)", np.array([-2.805118086952745, 3.131312518250573])),
            ("(-3.779, -3.283)", np.array([-3.779310253377747, -3.283185991286170])),
            ("(3.584, -1.848)", np.array([3.584428340330492, -1.848126526964404])),
        ],
        scale=5.0,
    )
)
register(
    Landscape(
        name="rosenbrock",
        description="Rosenbrock's valley (any D >= 2): sum b (x[k+1] - x[k]^2)^2 + (a - x[k])^2",
        dim=None,
        params={"a": 1.0, "b": 100.0},
        value=a.rosenbrock_value,
        grad=a.rosenbrock_grad,
        hess=a.rosenbrock_hess,
        init_box=(-2.0, 2.0),
        minima=a.rosenbrock_minima,
        scale=2.0,
    )
)


def get_landscape(name: str) -> Landscape:
    try:
        return LANDSCAPES[name]
    except KeyError:
        raise KeyError(f"landscape.name: unknown landscape {name!r}; known: {sorted(LANDSCAPES)}") from None

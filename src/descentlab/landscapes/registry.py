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
        min_dim=2,
    )
)


def _pts(*named):  # type: ignore[no-untyped-def]
    """A points function returning fixed 2-D points ``(name, (x, y))``."""
    out = [(n, np.array(pt, dtype=np.float64)) for n, pt in named]
    return lambda params, dim: [(n, pt.copy()) for n, pt in out]


def _origin(params, dim):  # type: ignore[no-untyped-def]
    return [("origin", np.zeros(dim))]


register(
    Landscape(
        name="quadratic",
        description="quadratic bowl 0.5 x^T A x (any D): eigenvalues log-spaced 1..condition, "
        "Givens rotation by `rotation` radians in each plane (2k, 2k+1)",
        dim=None,
        params={"condition": 10.0, "rotation": 0.0},
        value=a.quadratic_value,
        grad=a.quadratic_grad,
        hess=a.quadratic_hess,
        init_box=(-5.0, 5.0),
        pack_fn=a.quadratic_pack,
        minima=_origin,
        scale=5.0,
    )
)
register(
    Landscape(
        name="six_hump_camel",
        description="six-hump camel: two global minima -1.0316 at +-(0.0898, -0.7126), four local minima",
        dim=2,
        params={},
        value=a.six_hump_camel_value,
        grad=a.six_hump_camel_grad,
        hess=a.six_hump_camel_hess,
        init_box=(-2.0, 2.0),
        minima=_pts(
            ("global (0.090, -0.713)", (0.08984201310031807, -0.7126564030207396)),
            ("global (-0.090, 0.713)", (-0.08984201310031807, 0.7126564030207396)),
            ("local (1.704, -0.796)", (1.7036067149699814, -0.7960835686726251)),
            ("local (-1.704, 0.796)", (-1.7036067149699814, 0.7960835686726251)),
            ("local (1.607, 0.569)", (1.6071047529201974, 0.5686514548841313)),
            ("local (-1.607, -0.569)", (-1.6071047529201974, -0.5686514548841313)),
        ),
        saddles=_pts(
            ("origin", (0.0, 0.0)),
            ("(1.109, -0.768)", (1.1092053368047863, -0.7682680925095399)),
            ("(-1.109, 0.768)", (-1.1092053368047863, 0.7682680925095399)),
            ("(1.296, 0.605)", (1.2960702671671092, 0.6050843880386585)),
            ("(-1.296, -0.605)", (-1.2960702671671092, -0.6050843880386585)),
            ("(1.638, 0.229)", (1.6380679841897785, 0.22867406904439408)),
            ("(-1.638, -0.229)", (-1.6380679841897785, -0.22867406904439408)),
        ),
        maxima=((1.2302298765166524, 0.16233458445899493), (-1.2302298765166524, -0.16233458445899493)),
        scale=2.0,
    )
)
register(
    Landscape(
        name="rastrigin",
        description="Rastrigin (any D): A D + sum x^2 - A cos(2 pi x); global minimum 0 at 0",
        dim=None,
        params={"A": 10.0},
        value=a.rastrigin_value,
        grad=a.rastrigin_grad,
        hess=a.rastrigin_hess,
        init_box=(-5.12, 5.12),
        minima=_origin,
        scale=5.12,
    )
)
register(
    Landscape(
        name="ackley",
        description="Ackley (any D): -a exp(-b sqrt(mean x^2)) - exp(mean cos(c x)) + a + e; minimum 0 at 0 "
        "(a cone tip: the gradient there is taken as 0)",
        dim=None,
        params={"a": 20.0, "b": 0.2, "c": 2.0 * np.pi},
        value=a.ackley_value,
        grad=a.ackley_grad,
        hess=a.ackley_hess,
        init_box=(-5.0, 5.0),
        scratch_fn=lambda d: 3,
        minima=_origin,
        scale=5.0,
    )
)
register(
    Landscape(
        name="styblinski_tang",
        description="Styblinski-Tang (any D): 0.5 sum x^4 - 16 x^2 + 5 x; global minimum at x_k = -2.903534",
        dim=None,
        params={},
        value=a.styblinski_tang_value,
        grad=a.styblinski_tang_grad,
        hess=a.styblinski_tang_hess,
        init_box=(-5.0, 5.0),
        minima=a.styblinski_tang_minima,
        scale=5.0,
    )
)
register(
    Landscape(
        name="beale",
        description="Beale: (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2; minimum 0 at (3, 0.5)",
        dim=2,
        params={},
        value=a.beale_value,
        grad=a.beale_grad,
        hess=a.beale_hess,
        init_box=(-4.5, 4.5),
        minima=_pts(("global (3, 0.5)", (3.0, 0.5))),
        saddles=_pts(
            ("(0, 1)", (0.0, 1.0)),
            ("(0.101, -2.645)", (0.10053793732415839, -2.644513585023125)),
        ),
        scale=4.5,
    )
)
register(
    Landscape(
        name="muller_brown",
        description="Muller-Brown potential (standard parameters): three minima, two saddles",
        dim=2,
        params={},
        value=a.muller_brown_value,
        grad=a.muller_brown_grad,
        hess=a.muller_brown_hess,
        init_box=(-1.5, 2.0),
        pack_fn=a.muller_brown_pack,
        minima=_pts(
            ("A (-0.558, 1.442)", (-0.5582236346330243, 1.4417258418046686)),
            ("B (0.623, 0.028)", (0.6234994049308765, 0.028037758528685668)),
            ("C (-0.050, 0.467)", (-0.0500108229982061, 0.4666941048719721)),
        ),
        saddles=_pts(
            ("A-C (-0.822, 0.624)", (-0.8220015587327321, 0.6243128028148713)),
            ("C-B (0.212, 0.293)", (0.212486582000662, 0.2929883251073678)),
        ),
        scale=1.5,
    )
)
register(
    Landscape(
        name="saddle",
        description="saddle x^2 - y^2: a saddle at 0, no minima (unbounded below)",
        dim=2,
        params={},
        value=a.saddle_value,
        grad=a.saddle_grad,
        hess=a.saddle_hess,
        init_box=(-1.0, 1.0),
        saddles=_origin,
        scale=1.0,
    )
)
register(
    Landscape(
        name="monkey_saddle",
        description="monkey saddle x^3 - 3 x y^2: degenerate saddle at 0 (Hessian 0), no minima",
        dim=2,
        params={},
        value=a.monkey_saddle_value,
        grad=a.monkey_saddle_grad,
        hess=a.monkey_saddle_hess,
        init_box=(-1.0, 1.0),
        saddles=_origin,
        scale=1.0,
    )
)


def _double_well_minima(params, dim):  # type: ignore[no-untyped-def]
    left, right = np.zeros(dim), np.zeros(dim)
    left[0], right[0] = -1.0, 1.0
    return [("x0 = -1", left), ("x0 = +1", right)]


register(
    Landscape(
        name="double_well",
        description="symmetric double well (any D): barrier (x0^2 - 1)^2 + 0.5 sum_{k>=1} x_k^2; "
        "minima x0 = +-1, saddle at 0",
        dim=None,
        params={"barrier": 1.0},
        value=a.double_well_value,
        grad=a.double_well_grad,
        hess=a.double_well_hess,
        init_box=(-2.0, 2.0),
        minima=lambda p, d: _double_well_minima(p, d) if float(p["barrier"]) > 0 else [],
        saddles=lambda p, d: _origin(p, d) if float(p["barrier"]) > 0 else [],
        scale=2.0,
    )
)
register(
    Landscape(
        name="product",
        description="one-sample product loss (y - w1 w2 x)^2: minima on the curve w1 w2 = y/x, saddle at 0",
        dim=2,
        params={"x": 1.0, "y": 1.0},
        value=a.product_value,
        grad=a.product_grad,
        hess=a.product_hess,
        init_box=(-2.0, 2.0),
        saddles=lambda p, d: _origin(p, d) if float(p["x"]) * float(p["y"]) != 0 else [],
        minima_manifold="w1*w2 = y/x",
        scale=2.0,
    )
)
register(
    Landscape(
        name="random",
        description="seeded random landscape (any D): sum_k a_k cos(w_k.x + b_k) + 0.5 c |x|^2, "
        "K random Fourier features",
        dim=None,
        params={"features": 32, "seed": 0, "c": 0.1, "length_scale": 1.0},
        value=a.random_value,
        grad=a.random_grad,
        hess=a.random_hess,
        init_box=(-5.0, 5.0),
        pack_fn=a.random_pack,
        scratch_fn=lambda d: 1,
        scale=5.0,
    )
)


def get_landscape(name: str) -> Landscape:
    try:
        return LANDSCAPES[name]
    except KeyError:
        raise KeyError(f"landscape.name: unknown landscape {name!r}; known: {sorted(LANDSCAPES)}") from None

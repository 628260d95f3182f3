"""The landscape interface.

A landscape is three math functions over a block of particles plus metadata.
Positions are stored *structure of arrays*: ``x[d, i]`` is coordinate ``d`` of
particle ``i``, so a loop over particles is stride-1 and vectorises.

Math function signatures (all registered with :func:`descentlab._jit.math_function`):

``value(x, p, w, out, lo, hi)``
    ``out[i] = f(x[:, i])`` for ``i`` in ``[lo, hi)``; ``out`` (n,) is modified.
``grad(x, p, w, g, lo, hi)``
    ``g[:, i] = grad f(x[:, i])``; ``g`` (D, n) is modified.
``hess(x, p, w, h, lo, hi)``
    ``h[:, :, i] = Hessian of f at x[:, i]``; ``h`` (D, D, n) is modified.

``p`` is the packed parameter vector (kernel dtype, see :meth:`Landscape.pack`),
``w`` a scratch array (``scratch_rows(D)``, n) the function may overwrite.
On the CPU the kernel calls them on a local block (``lo=0, hi=n``); on CUDA
each thread calls them with ``hi = lo + 1`` on the global arrays.

Adding a landscape: write the three functions in a module, describe it with a
:class:`Landscape`, and add it to ``registry.LANDSCAPES``. The test suite
checks every registered landscape (finite differences, known minima) by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.tables import check_number

ParamPacker = Callable[[Mapping[str, Any], int], np.ndarray]
PointsFn = Callable[[Mapping[str, Any], int], list[tuple[str, np.ndarray]]]


def _no_points(params: Mapping[str, Any], dim: int) -> list[tuple[str, np.ndarray]]:
    return []


@dataclass(frozen=True)
class Landscape:
    """Metadata and math of one landscape.

    Attributes
    ----------
    name: registry name (``[landscape] name = ...``).
    description: one line for the catalogue.
    dim: fixed dimension, or ``None`` for "any D" (then ``default_dim`` applies).
    params: parameter names and defaults (scalars).
    value, grad, hess: math functions (see module docstring).
    init_box: default ``(low, high)`` of the uniform initialisation, per coordinate.
    pack_fn: ``(params, D) -> float64 array`` packed for the kernel (see :meth:`pack`);
        None packs ``params`` in declaration order.
    scratch_fn: ``D -> rows`` of scratch the math needs (see :meth:`scratch_rows`); None: 1.
    minima, saddles: known critical points ``[(name, point (D,)), ...]``.
    minima_manifold: description of a continuous set of minima, if any.
    batch_grad: the minibatch gradient ``(x, p, w, g, lo, hi, t, seed, gid0)``
        of a finite-sum landscape (None: the full gradient, see
        :func:`descentlab.kernels.compile.full_batch`).
    block: particles per CPU block (None: the default).
    min_dim: the smallest dimension an "any D" landscape accepts.
    maxima: known local maxima, points (D,) of a fixed-dimension landscape (analysis labels them).
    spec_entry: how the landscape is written in a resolved spec's ``[landscape]`` table
        when its name is not enough (a formula: ``{"formula": ...}``).
    variables: a formula's variable names, in coordinate order.
    module: the name of the generated module that holds a formula's math.
    """

    name: str
    description: str
    dim: int | None
    params: Mapping[str, Any]
    value: Callable[..., Any]
    grad: Callable[..., Any]
    hess: Callable[..., Any]
    init_box: tuple[float, float]
    pack_fn: ParamPacker | None = None
    scratch_fn: Callable[[int], int] | None = None
    minima: PointsFn = _no_points
    saddles: PointsFn = _no_points
    minima_manifold: str | None = None
    default_dim: int = 2
    scale: float = 1.0
    batch_grad: Callable[..., Any] | None = None
    block: int | None = None
    min_dim: int = 1
    maxima: tuple[tuple[float, ...], ...] = ()
    spec_entry: Mapping[str, Any] = field(default_factory=dict)
    variables: tuple[str, ...] = ()
    module: str | None = None

    def resolve_dim(self, dim: int | None) -> int:
        """The dimension a run uses; raises ``ValueError`` on a mismatch."""
        if self.dim is not None:
            if dim is not None and dim != self.dim:
                raise ValueError(f"landscape {self.name!r} has dimension {self.dim}, not {dim}")
            return self.dim
        d = self.default_dim if dim is None else int(dim)
        if d < 1:
            raise ValueError(f"dimension must be >= 1, got {d}")
        return d

    def resolve_params(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults overlaid with ``given``; unknown names raise ``KeyError``."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise KeyError(
                f"landscape {self.name!r} has no parameter {unknown[0]!r}; "
                f"it takes {sorted(self.params) or 'none'}"
            )
        out = dict(self.params)
        out.update(given)
        return out

    def validate(self, given: Mapping[str, Any] | None, dim: Any = None) -> tuple[dict[str, Any], int]:
        """(parameters, dimension) of a ``[landscape]`` table: defaults overlaid, numbers checked.

        Raises ``KeyError`` for an unknown parameter and ``ValueError("key: what is wrong")``
        (``key`` a parameter name or ``dim``) for a bad value.
        """
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise ValueError(f"dim: expected an integer >= 1, got {dim!r}")
        params = self.resolve_params(given)
        for key, val in params.items():
            default = self.params[key]
            if isinstance(default, int | float) and not isinstance(default, bool):
                params[key] = check_number(key, val)
                if isinstance(default, int):
                    if params[key] != int(params[key]):
                        raise ValueError(f"{key}: expected an integer, got {val!r}")
                    params[key] = int(params[key])
        try:
            d = self.resolve_dim(dim)
        except ValueError as exc:
            raise ValueError(f"dim: {exc}") from None
        if d < self.min_dim:
            raise ValueError(f"dim: {self.name} needs dim >= {self.min_dim}")
        try:
            self.pack(params, d)
        except ValueError as exc:
            raise ValueError(f"{getattr(exc, 'field', 'name')}: {exc}") from None
        return params, d

    def pack(self, params: Mapping[str, Any], dim: int) -> np.ndarray:
        """Packed parameter vector (float64; cast to the kernel dtype by the engine)."""
        if self.pack_fn is not None:
            return np.ascontiguousarray(self.pack_fn(params, dim), dtype=np.float64).ravel()
        vals = [float(params[k]) for k in self.params]
        return np.asarray(vals if vals else [0.0], dtype=np.float64)

    def scratch_rows(self, dim: int) -> int:
        """Rows of the scratch ``w`` the math needs in dimension ``dim`` (at least 1)."""
        return 1 if self.scratch_fn is None else max(1, int(self.scratch_fn(dim)))

"""The optimizer interface: explicit state plus one step function (optax's init/update pair).

``step(x, g, s, h, lr, t, H, ws, seed, gid0, lo, hi)`` updates particles
``[lo, hi)`` in place:

* ``x`` (D, n) positions (modified), ``g`` (D, n) gradients at ``x``;
* ``s`` (S, D, n) state slots named by :attr:`Optimizer.state` (modified);
* ``h`` packed hyperparameters (float64, in the order of :attr:`Optimizer.layout`,
  filled by name by :meth:`Optimizer.pack`), ``lr`` the scheduled learning rate of
  this step (float64);
* ``t`` the 1-based step count of this optimizer (bias corrections);
* ``H`` (D, D, n) the Hessian at ``x`` when :attr:`needs_hessian`, else a dummy;
* ``ws`` (rows, n) scratch; ``seed`` (uint64) and ``gid0`` (global id of
  column 0, int64) key the counter-based RNG for noisy optimizers.

Hyperparameters use torch.optim's names and defaults; tuples (``betas``) are
flattened in order. Booleans travel as 0.0/1.0, so *every* hyperparameter is
a runtime value and a sweep reuses one compiled kernel.

Hyperparameters by name: a step module declares the layout of ``h`` as a tuple of
names (``HYPER``; a tuple hyperparameter's entries are ``name[k]``) and reads ``h``
through index constants derived from it by name (:func:`hyper_indices`), e.g.
``BETA1, EPS = hyper_indices(HYPER, "betas[0]", "eps")``. The registry passes the same
tuple as :attr:`Optimizer.layout`, :meth:`Optimizer.pack` fills ``h`` by looking each
name up, and constructing an :class:`Optimizer` whose layout does not name exactly its
hyperparameters raises. So neither reordering ``hyper`` nor reordering ``HYPER`` can
feed one hyperparameter to another's slot.

Adding an optimizer: write ``step`` (and its ``HYPER``) in a module, describe it with
an :class:`Optimizer`, add it to ``registry.OPTIMIZERS``, and give the NumPy reference
in ``tests/reference.py`` the same rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Optimizer:
    """Metadata and step of one optimizer.

    Attributes
    ----------
    name, description: catalogue entries.
    hyper: hyperparameter names (torch's) and defaults; ``lr`` first.
    layout: names of the entries of the packed vector ``h``, in order (tuple
        hyperparameters as ``name[k]``); empty: the order of ``hyper``.
    state: names of the state slots, each float[D, N].
    step: the math function (see module docstring).
    needs_hessian: the kernel evaluates the landscape Hessian before ``step``.
    scratch_fn: rows of ``ws`` needed for dimension D.
    init_fill: ``hyper -> float``, the initial value of every state slot; zeros by default
        (see :meth:`initial_state`).
    reference: URL of the documented update rule.
    """

    name: str
    description: str
    hyper: Mapping[str, Any]
    state: tuple[str, ...]
    step: Callable[..., Any]
    needs_hessian: bool = False
    scratch_fn: Callable[[int], int] | None = None
    init_fill: Callable[[Mapping[str, Any]], float] | None = None
    reference: str = ""
    layout: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.layout:
            want, got = sorted(self.packed_names()), sorted(self.layout)
            if want != got:
                raise ValueError(f"optimizer {self.name!r}: layout {list(self.layout)} does not name exactly its "
                                 f"hyperparameters but lr ({self.packed_names()})")  # fmt: skip

    def packed_names(self) -> list[str]:
        """The names of the entries of ``h`` in the order of :attr:`hyper` (tuples as ``name[k]``)."""
        names: list[str] = []
        for key, default in self.hyper.items():
            if key == "lr":
                continue
            if isinstance(default, list | tuple):
                names += [f"{key}[{k}]" for k in range(len(default))]
            else:
                names.append(key)
        return names

    def resolve(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults overlaid with ``given``; unknown names raise ``KeyError``."""
        given = dict(given or {})
        given.pop("name", None)
        unknown = sorted(set(given) - set(self.hyper))
        if unknown:
            raise KeyError(
                f"optimizer {self.name!r} has no hyperparameter {unknown[0]!r}; "
                f"it takes {sorted(self.hyper)}"
            )
        out = dict(self.hyper)
        out.update(given)
        return out

    def pack(self, hyper: Mapping[str, Any]) -> np.ndarray:
        """``h``: float64 vector of every hyperparameter but ``lr``, in :attr:`layout` order, by name."""
        vals: list[float] = []
        for name in self.layout or self.packed_names():
            key, _, index = name.partition("[")
            v = hyper[key]
            vals.append(float(v[int(index[:-1])] if index else v))
        return np.asarray(vals if vals else [0.0], dtype=np.float64)

    def scratch_rows(self, dim: int) -> int:
        """Rows of the scratch ``ws`` the step needs in dimension ``dim`` (at least 1)."""
        return 1 if self.scratch_fn is None else max(1, int(self.scratch_fn(dim)))

    def initial_state(self, hyper: Mapping[str, Any], dim: int, n: int, dtype: Any) -> np.ndarray:
        """The state ``float[max(1, S), dim, n]`` before the first step (:attr:`init_fill` everywhere)."""
        fill = 0.0 if self.init_fill is None else float(self.init_fill(hyper))
        return np.full((max(1, len(self.state)), dim, n), fill, dtype=dtype)


def hyper_indices(layout: tuple[str, ...], *names: str) -> tuple[int, ...]:
    """Positions of ``names`` in ``layout`` (a step module's ``HYPER``): its index constants.

    Module-level ints, so the compiled step reads ``h[EPS]`` as ``h[2]``; a name not in
    the layout raises at import.
    """
    missing = [n for n in names if n not in layout]
    if missing:
        raise ValueError(f"hyperparameter {missing[0]!r} is not in the layout {layout}")
    return tuple(layout.index(n) for n in names)

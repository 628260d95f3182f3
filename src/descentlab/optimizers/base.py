"""The optimizer interface: explicit state plus one step function (optax's init/update pair).

``step(x, g, s, h, lr, t, H, ws, seed, gid0, lo, hi)`` updates particles
``[lo, hi)`` in place:

* ``x`` (D, n) positions (modified), ``g`` (D, n) gradients at ``x``;
* ``s`` (S, D, n) state slots named by :attr:`Optimizer.state` (modified);
* ``h`` packed hyperparameters (float64, order of :attr:`Optimizer.hyper`
  without ``lr``), ``lr`` the scheduled learning rate of this step (float64);
* ``t`` the 1-based step count of this optimizer (bias corrections);
* ``H`` (D, D, n) the Hessian at ``x`` when :attr:`needs_hessian`, else a dummy;
* ``ws`` (rows, n) scratch; ``seed`` (uint64) and ``gid0`` (global id of
  column 0, int64) key the counter-based RNG for noisy optimizers.

Hyperparameters use torch.optim's names and defaults; tuples (``betas``) are
flattened in order. Booleans travel as 0.0/1.0, so *every* hyperparameter is
a runtime value and a sweep reuses one compiled kernel.

Adding an optimizer: write ``step`` in a module, describe it with an
:class:`Optimizer`, add it to ``registry.OPTIMIZERS``, and give the NumPy
reference in ``tests/reference.py`` the same rule.
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
    state: names of the state slots, each float[D, N].
    step: the math function (see module docstring).
    needs_hessian: the kernel evaluates the landscape Hessian before ``step``.
    scratch_fn: rows of ``ws`` needed for dimension D.
    init_state: ``(hyper, S, D, N, dtype) -> float[S, D, N]``; zeros by default.
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
        """float64 vector of every hyperparameter but ``lr``, tuples flattened."""
        vals: list[float] = []
        for key in self.hyper:
            if key == "lr":
                continue
            v = hyper[key]
            if isinstance(v, list | tuple):
                vals.extend(float(u) for u in v)
            else:
                vals.append(float(v))
        return np.asarray(vals if vals else [0.0], dtype=np.float64)

    def scratch_rows(self, dim: int) -> int:
        return 1 if self.scratch_fn is None else max(1, int(self.scratch_fn(dim)))

    def initial_state(self, hyper: Mapping[str, Any], dim: int, n: int, dtype: Any) -> np.ndarray:
        fill = 0.0 if self.init_fill is None else float(self.init_fill(hyper))
        return np.full((max(1, len(self.state)), dim, n), fill, dtype=dtype)

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

from ..core.tables import check_number

#: The allowed values of hyperparameters by name (as torch.optim checks them), for every
#: optimizer that has one: ``(low, high, low_open, high_open)``; ``None``: unbounded.
#: A tuple hyperparameter (``betas``) applies the range to each entry. Used to validate
#: ``[optimizer]`` tables (:meth:`Optimizer.validate`) and in the spec reference.
HYPER_RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "lr": (0.0, None, True, True),
    "eps": (0.0, None, False, True),
    "weight_decay": (0.0, None, False, True),
    "momentum": (0.0, None, False, True),
    "dampening": (0.0, None, False, True),
    "noise_std": (0.0, None, False, True),
    "lr_decay": (0.0, None, False, True),
    "initial_accumulator_value": (0.0, None, False, True),
    "damping": (0.0, None, False, True),
    "alpha": (0.0, 1.0, False, False),
    "betas": (0.0, 1.0, False, True),
}


def describe_range(name: str) -> str:
    """The allowed values of hyperparameter ``name`` in words (``> 0``, ``in [0, 1)``, ``any``)."""
    if name not in HYPER_RANGES:
        return "any"
    low, high, low_open, high_open = HYPER_RANGES[name]
    if high is None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def _in_range(name: str, v: float) -> bool:
    low, high, low_open, high_open = HYPER_RANGES[name]
    ok = low is None or (v > low if low_open else v >= low)
    return ok and (high is None or (v < high if high_open else v <= high))




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

    def validate(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """The resolved hyperparameters of an ``[optimizer]`` table (defaults overlaid, checked).

        Raises ``KeyError`` for an unknown name and ``ValueError("key: what is wrong")`` for a
        value of the wrong type or outside :data:`HYPER_RANGES`.
        """
        hyper = self.resolve(given)
        for key, default in self.hyper.items():
            val = hyper[key]
            if isinstance(default, bool):
                if not isinstance(val, bool):
                    raise ValueError(f"{key}: expected true or false, got {val!r}")
            elif isinstance(default, tuple):
                if not isinstance(val, list | tuple) or len(val) != len(default):
                    raise ValueError(f"{key}: expected {len(default)} numbers, got {val!r}")
                vals = tuple(check_number(key, v) for v in val)
                if key in HYPER_RANGES and not all(_in_range(key, v) for v in vals):
                    raise ValueError(f"{key}: each must be {describe_range(key)} (got {list(val)})")
                hyper[key] = vals
            else:
                v = check_number(key, val)
                if key in HYPER_RANGES and not _in_range(key, v):
                    raise ValueError(f"{key}: must be {describe_range(key)} (got {val!r})")
                hyper[key] = v
        if hyper.get("nesterov") and (hyper.get("momentum", 0.0) <= 0 or hyper.get("dampening", 0.0) != 0):
            raise ValueError("nesterov: requires momentum > 0 and dampening = 0 (as torch.optim.SGD)")
        return hyper

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

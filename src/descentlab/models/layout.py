"""Layout of a model's flat parameter vector: one :class:`LayerEntry` per tensor.

A model's parameters live in one flat float vector per particle (the position
the optimizers move). The layout says which coordinates belong to which tensor,
what kind of tensor it is and its fans, so that initialization
(:mod:`descentlab.models.init`) and per-layer analysis can address layers.

Conventions (as torch.nn.Linear, https://pytorch.org/docs/stable/nn.init.html):

* a dense layer ``in -> out`` has a ``weight`` entry of shape ``(out, in)``
  (or ``(in, out)``; the shape only reshapes the slice) with ``fan_in = in``
  and ``fan_out = out``, and a ``bias`` entry of shape ``(out,)`` that carries
  the *layer's* fans (``fan_in = in``, ``fan_out = out``): the
  ``torch_default`` bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)) needs them;
* batch normalization adds ``bn_gamma`` and ``bn_beta`` entries of shape
  ``(features,)`` (fans: ``features``; not used).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Kind = Literal["weight", "bias", "bn_gamma", "bn_beta"]
KINDS: tuple[str, ...] = ("weight", "bias", "bn_gamma", "bn_beta")


@dataclass(frozen=True)
class LayerEntry:
    """One tensor of the flat parameter vector: coordinates ``slice`` hold ``shape`` (C order)."""

    name: str
    kind: Kind
    slice: slice
    shape: tuple[int, ...]
    fan_in: int
    fan_out: int

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"layout entry {self.name!r}: kind must be one of {list(KINDS)}, got {self.kind!r}")
        start, stop, step = self.slice.start, self.slice.stop, self.slice.step
        if not isinstance(start, int) or not isinstance(stop, int) or step not in (None, 1) or start < 0:
            raise ValueError(f"layout entry {self.name!r}: slice must be slice(start, stop) with 0 <= start, "
                             f"got {self.slice!r}")  # fmt: skip
        if stop - start != math.prod(self.shape):
            raise ValueError(f"layout entry {self.name!r}: slice {start}:{stop} holds {stop - start} values, "
                             f"shape {self.shape} needs {math.prod(self.shape)}")  # fmt: skip

    @property
    def start(self) -> int:
        return int(self.slice.start)

    @property
    def stop(self) -> int:
        return int(self.slice.stop)

    @property
    def size(self) -> int:
        return self.stop - self.start


def check_layout(layout: Sequence[LayerEntry], dim: int) -> None:
    """Raise ValueError unless the entries tile ``[0, dim)`` exactly (no gap, no overlap)."""
    covered = 0
    for entry in sorted(layout, key=lambda e: e.start):
        if entry.start < covered:
            raise ValueError(f"layout entry {entry.name!r} ({entry.start}:{entry.stop}) overlaps the previous entry")
        if entry.start > covered:
            raise ValueError(f"layout leaves coordinates {covered}:{entry.start} uncovered (before {entry.name!r})")
        covered = entry.stop
    if covered != dim:
        raise ValueError(f"layout covers {covered} coordinates, the parameter vector has {dim}")


#: Fields of a layout as a table (:func:`layout_records`), as stored in a run file's ``/model/layout``.
LAYOUT_FIELDS = ("name", "kind", "offset", "size", "shape", "fan_in", "fan_out")


def layout_records(layout: Sequence[LayerEntry]) -> list[dict[str, object]]:
    """One dict per tensor: ``name``, ``kind``, ``offset`` (first coordinate), ``size``, ``shape``
    (tuple), ``fan_in``, ``fan_out`` - coordinates ``offset .. offset + size`` of the flat vector."""
    return [{"name": e.name, "kind": e.kind, "offset": int(e.slice.start), "size": int(e.slice.stop - e.slice.start),
             "shape": tuple(int(n) for n in e.shape), "fan_in": int(e.fan_in), "fan_out": int(e.fan_out)}
            for e in layout]  # fmt: skip

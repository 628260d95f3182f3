"""The final status of a particle: one enum for kernels, engine, run files and analysis."""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """What happened to a particle (``/final/status``, int8).

    ``RUNNING`` while a run goes on; at its end it means the particle ran all
    steps without converging. The kernels compare against the plain ints
    (``int(Status.X)``, see :mod:`descentlab.kernels.common`).
    """

    RUNNING = 0
    CONVERGED = 1
    DIVERGED = 2
    OUT_OF_BOUND = 3

    @property
    def label(self) -> str:
        """The words used in reports and in the run file's ``codes`` attribute."""
        return STATUS_CODES[int(self)]


#: code -> words (stored as JSON in the ``codes`` attribute of ``/final/status``).
STATUS_CODES: dict[int, str] = {0: "ran all steps", 1: "converged", 2: "diverged", 3: "left the bound"}
#: The words in code order.
STATUS_NAMES: tuple[str, ...] = tuple(STATUS_CODES[k] for k in sorted(STATUS_CODES))

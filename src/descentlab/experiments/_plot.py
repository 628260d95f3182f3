"""Figure helpers for the experiments: one style, titles that carry the hyperparameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def figure(ncols: int = 1, nrows: int = 1, width: float = 5.2, height: float = 4.0) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    return fig, ax


def save(fig: Any, folder: Path, name: str, title: str) -> str:
    """Save ``fig`` with the suptitle ``title`` as ``folder/name.png``; returns the file name."""
    import matplotlib.pyplot as plt

    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    path = Path(folder) / f"{name}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name

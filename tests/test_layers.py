"""The import graph has no edge that climbs back up a floor.

Floors, bottom to top (a module may import from its own floor and the floors below):

0. ground floor: ``descentlab.core`` (RNG, schedules, status codes, kernel identity, HDF5 input
   checks), ``descentlab._jit`` (compile options), ``descentlab._version``
1. the math: ``landscapes``, ``optimizers``, ``models``, ``data``
2. problem definitions composed from the math: ``problems``
3. target adapters: ``kernels``
4. ``engine`` (spec, run loop, run files)
5. ``analysis``, ``sweeps``
6. faces: ``experiments``, ``cli``, ``demo`` and the package itself (``descentlab/__init__.py``)

Every import counts, also those inside functions and under ``TYPE_CHECKING``: a lazy import
that climbs up is still a dependency on the floor above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "descentlab"

FLOORS: dict[str, int] = {
    "descentlab.core": 0,
    "descentlab._jit": 0,
    "descentlab._version": 0,
    "descentlab.landscapes": 1,
    "descentlab.optimizers": 1,
    "descentlab.models": 1,
    "descentlab.data": 1,
    "descentlab.problems": 2,
    "descentlab.kernels": 3,
    "descentlab.engine": 4,
    "descentlab.analysis": 5,
    "descentlab.sweeps": 5,
    "descentlab.experiments": 6,
    "descentlab.cli": 6,
    "descentlab.demo": 6,
    "descentlab": 6,
}


def floor_of(module: str) -> int:
    """The floor of a module: the longest prefix of its dotted name in :data:`FLOORS`."""
    parts = module.split(".")
    for k in range(len(parts), 0, -1):
        name = ".".join(parts[:k])
        if name in FLOORS:
            return FLOORS[name]
    raise KeyError(f"{module}: on no floor; add its package to FLOORS (and to docs/architecture.md)")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import of the package in ``path``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "descentlab"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "descentlab":
                continue
            if node.module is None or target in FLOORS:  # `from . import x`: x may be a module
                found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, target))
    return found


def test_floor_of():
    assert floor_of("descentlab.core.rng") == 0
    assert floor_of("descentlab.kernels.cpu") == 3
    assert floor_of("descentlab.engine.store.writer") == 4
    assert floor_of("descentlab.__version__") == 6
    with pytest.raises(KeyError):
        floor_of("numpy")


def test_the_checker_sees_an_edge_that_climbs(tmp_path, monkeypatch):
    """The check itself can fail: a lazy import of the engine from the ground floor is caught."""
    core = tmp_path / "descentlab" / "core"
    core.mkdir(parents=True)
    bad = core / "bad.py"
    bad.write_text("def f():\n    from ..engine.run import simulate\n    from . import rng\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path / "descentlab")
    assert imports_of(bad) == [(2, "descentlab.engine.run"), (3, "descentlab.core.rng")]
    assert [t for _, t in imports_of(bad) if floor_of(t) > floor_of(module_name(bad))] == ["descentlab.engine.run"]


def test_every_module_is_on_a_floor():
    for path in PACKAGE.rglob("*.py"):
        floor_of(module_name(path))


def test_no_import_climbs_up_a_floor():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = module_name(path)
        for line, target in imports_of(path):
            if floor_of(target) > floor_of(here):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {here} (floor {floor_of(here)}) imports "
                           f"{target} (floor {floor_of(target)})")  # fmt: skip
    assert not bad, "imports that climb up a floor:\n" + "\n".join(bad)

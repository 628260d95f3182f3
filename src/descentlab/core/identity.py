"""The identity of a compiled kernel: a deterministic hash of everything its machine code depends on.

Numba's on-disk cache keys a kernel by its file, line and qualified name, and
links the functions of one process by mangled symbol names that carry a
per-process counter. Functions made in a closure share one qualified name, so
two kernels compiled in *different* processes could export the same symbol;
loaded together into one process, one kernel's calls then bound to the other's
code (the "Adam runs SGD's kernel" defect). Every kernel is therefore named by
:func:`salt_of` - the identity of the math it wraps, the source text of the
package, the versions and the dtype - so different code never shares a name,
and returns :func:`identity_code` of that salt, which the host checks.

The salt is computed from source *text*, never from marshalled code objects
(those change once a function has run, which made keys differ between
processes and recompiled kernels for nothing).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import numpy as np

from .._version import __version__

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent

#: The parts of the package whose code can end up in compiled kernels (the ground floor: RNG,
#: schedules, status; math, adapters, minibatches, models). Host-only modules (CLI, store, analysis) are
#: left out, so editing them does not recompile every kernel.
KERNEL_SOURCES = ("_jit.py", "core", "kernels", "landscapes", "optimizers", "models", "data")


@functools.cache
def package_salt() -> str:
    """Hash of the text of the package's kernel sources and of the compiler versions (16 hex digits)."""
    h = hashlib.sha256()
    h.update(f"{__version__}|{numba.__version__}|{np.__version__}|{sys.version_info[:2]}".encode())
    paths = [p for part in KERNEL_SOURCES for p in ((_PACKAGE_ROOT / part).rglob("*.py")
             if (_PACKAGE_ROOT / part).is_dir() else [_PACKAGE_ROOT / part])]  # fmt: skip
    for path in sorted(paths):
        h.update(str(path.relative_to(_PACKAGE_ROOT)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


@functools.cache
def _covered(module: str) -> bool:
    """Whether :func:`package_salt` already hashes the text of ``module``."""
    path = getattr(sys.modules.get(module), "__file__", None)
    if not path:
        return False
    rel = Path(path).resolve()
    return any(rel == _PACKAGE_ROOT / part or (_PACKAGE_ROOT / part) in rel.parents for part in KERNEL_SOURCES)


@functools.cache
def _module_text(name: str) -> bytes:
    """Source text of a module outside the package (formula modules, user code)."""
    mod = sys.modules.get(name)
    path = getattr(mod, "__file__", None)
    if path and Path(path).is_file():
        return Path(path).read_bytes()
    try:
        return inspect.getsource(mod).encode() if mod is not None else b""
    except (OSError, TypeError):
        return b""


def _describe(obj: Any, seen: set[int]) -> str:
    """A process-independent description of ``obj`` (a math function and what its closure holds)."""
    if isinstance(obj, types.FunctionType):
        if id(obj) in seen:
            return f"<cycle {obj.__qualname__}>"
        seen.add(id(obj))
        parts = [f"{obj.__module__}.{obj.__qualname__}"]
        if not _covered(obj.__module__):
            text = _module_text(obj.__module__)
            if not text:  # defined interactively: its code is all there is
                text = repr((obj.__code__.co_code, obj.__code__.co_consts)).encode()
            parts.append(hashlib.sha256(text).hexdigest())
        for cell in obj.__closure__ or ():
            try:
                parts.append(_describe(cell.cell_contents, seen))
            except ValueError:  # an empty cell
                parts.append("<empty>")
        return "(" + " ".join(parts) + ")"
    if isinstance(obj, bool | int | float | str | bytes | np.generic | type(None)):
        return repr(obj)
    if isinstance(obj, tuple | list):
        return "[" + ",".join(_describe(o, seen) for o in obj) + "]"
    if isinstance(obj, np.ndarray):
        return f"array({obj.dtype},{obj.shape},{hashlib.sha256(obj.tobytes()).hexdigest()})"
    # anything else (a dispatcher, an object): its type and repr; an address in the repr only
    # makes the key differ between processes (a recompile), never equal for different code
    return f"{type(obj).__module__}.{type(obj).__qualname__}:{obj!r}"


def closure_name(fn: Callable[..., Any]) -> str:
    """A qualified name for a closure that differs whenever its closure's contents do."""
    base = fn.__qualname__.replace("<locals>.", "").replace(".", "_")
    return f"{base}_{hashlib.sha256(_describe(fn, set()).encode()).hexdigest()[:12]}"


def salt_of(fn: Callable[..., Any], kind: str, dtype_name: str) -> str:
    """16 hex digits naming ``fn`` compiled as ``kind`` for ``dtype_name`` (see the module docstring)."""
    h = hashlib.sha256()
    h.update(package_salt().encode())
    h.update(f"{kind}|{dtype_name}|".encode())
    h.update(_describe(fn, set()).encode())
    return h.hexdigest()[:16]


def identity_code(salt: str) -> int:
    """A positive 28-bit constant derived from ``salt``, returned by the kernel it names."""
    return int(hashlib.sha256(salt.encode()).hexdigest()[:7], 16) + 1

"""User formulas: a landscape from an expression string, differentiated symbolically.

``formula_landscape("(1-x)**2 + 100*(y-x**2)**2")`` parses the formula with SymPy
(a restricted namespace: only the variables it names and the functions in
:data:`FUNCTIONS`; nothing is ``eval``-ed as Python), derives the gradient and
the Hessian, and generates math functions that follow the kernel rules (every
constant through :func:`descentlab._jit.real`, the particle loop innermost,
common subexpressions shared). The generated module is written to
``$DESCENTLAB_CACHE/formulas/f_<sha256>.py`` (default
``~/.cache/descentlab/formulas``) and imported as ``descentlab_formula_<hash>``,
so Numba's on-disk cache and pickling by reference see a real module.

Variables are the formula's free names, sorted naturally (``x, y``; ``x2`` before
``x10``): coordinate ``k`` of a particle is the ``k``-th variable.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
import io
import keyword
import math
import operator
import os
import re
import signal
import sys
import threading
import tokenize
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .base import Landscape

#: Version of the code generator (part of the generated file; bump on changes).
GENERATOR_VERSION = "1"

#: Functions a formula may call: name in the formula -> SymPy attribute.
FUNCTIONS = {
    "sin": "sin", "cos": "cos", "tan": "tan", "asin": "asin", "acos": "acos", "atan": "atan",
    "sinh": "sinh", "cosh": "cosh", "tanh": "tanh", "asinh": "asinh", "acosh": "acosh", "atanh": "atanh",
    "exp": "exp", "log": "log", "sqrt": "sqrt", "abs": "Abs", "Abs": "Abs", "erf": "erf",
}  # fmt: skip
#: Named constants.
CONSTANTS = {"pi": "pi", "E": "E", "I": "I"}

_ALLOWED_CHARS = re.compile(r"^[A-Za-z0-9_+\-*/^().,\s]*$")
_MAX_LEN = 10_000
#: Bounds on what a formula may ask of SymPy (each refused with a message, never a hang):
#: variables (the Hessian has D^2 entries), nesting depth, syntax nodes, the size of a
#: constant exponent, and the seconds that parsing and differentiating may take.
MAX_VARIABLES = 32
MAX_DEPTH = 40
MAX_NODES = 4000
MAX_EXPONENT = 1000
TIME_LIMIT = 30.0
_MEMO: dict[str, Landscape] = {}
_LOCK = threading.Lock()


def _natural_key(name: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def _names(formula: str) -> tuple[list[str], list[str]]:
    """(variables, called functions) of the formula, via Python's tokenizer."""
    try:
        toks = [t for t in tokenize.generate_tokens(io.StringIO(formula).readline)
                if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT,
                                  tokenize.DEDENT)]  # fmt: skip
    except (tokenize.TokenError, SyntaxError, IndentationError) as exc:
        raise ValueError(f"cannot parse formula {formula!r}: {exc}") from None
    variables: set[str] = set()
    called: set[str] = set()
    for k, tok in enumerate(toks):
        if tok.type == tokenize.ERRORTOKEN and not tok.string.isspace():
            raise ValueError(f"cannot parse formula {formula!r}: unexpected {tok.string!r}")
        if tok.type == tokenize.OP and tok.string == ".":
            raise ValueError(f"formula {formula!r}: attribute access ('.') is not allowed")
        if tok.type != tokenize.NAME:
            continue
        name = tok.string
        if keyword.iskeyword(name) or name.startswith("_"):
            raise ValueError(f"formula {formula!r}: {name!r} is not allowed as a name")
        is_call = k + 1 < len(toks) and toks[k + 1].string == "("
        if is_call:
            if name not in FUNCTIONS:
                raise ValueError(
                    f"formula {formula!r}: unknown function {name!r}; known: {', '.join(sorted(FUNCTIONS))}"
                )
            called.add(name)
        elif name in FUNCTIONS:
            raise ValueError(f"formula {formula!r}: function {name!r} used without arguments")
        elif name not in CONSTANTS:
            variables.add(name)
    return sorted(variables, key=_natural_key), sorted(called)


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow}  # fmt: skip
_CONST_VALUES = {"pi": math.pi, "E": math.e}
_MATH = {"sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin, "acos": math.acos,
         "atan": math.atan, "sinh": math.sinh, "cosh": math.cosh, "tanh": math.tanh, "asinh": math.asinh,
         "acosh": math.acosh, "atanh": math.atanh, "exp": math.exp, "log": math.log, "sqrt": math.sqrt,
         "abs": abs, "Abs": abs, "erf": math.erf}  # fmt: skip


def _check_bounds(text: str, formula: str, n_vars: int) -> None:
    """Refuse, before SymPy sees it, a formula that would make SymPy hang or overflow.

    Python's own parser gives the tree (``^`` read as ``**`` as SymPy does);
    constant subexpressions are evaluated in floating point, so that
    ``10**10**10`` is refused (its exponent) in microseconds instead of being
    expanded into a 10-billion-digit integer.
    """
    if n_vars > MAX_VARIABLES:
        raise ValueError(f"formula {formula!r} has {n_vars} variables; at most {MAX_VARIABLES} are allowed")
    try:
        tree = ast.parse(text.replace("^", "**"), mode="eval")
    except (SyntaxError, RecursionError, MemoryError, ValueError) as exc:
        msg = exc.msg if isinstance(exc, SyntaxError) else type(exc).__name__
        raise ValueError(f"cannot parse formula {formula!r}: {msg}") from None
    stack, count = [(tree.body, 1)], 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH:
            raise ValueError(f"formula {formula!r} is nested more than {MAX_DEPTH} levels deep")
        if count > MAX_NODES:
            raise ValueError(f"formula {formula!r} has more than {MAX_NODES} terms")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    _const(tree.body, formula)


def _finite(v: float, formula: str, what: str) -> float:
    if not math.isfinite(v):
        raise ValueError(f"formula {formula!r}: {what} is not a finite number")
    return v


def _const(node: ast.AST, formula: str) -> float | None:
    """The value of a constant subexpression (None if it has variables or no real float value)."""
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, int | float):
            return None
        try:
            return _finite(float(v), formula, "a number in it (too large for a float)")
        except OverflowError:
            raise ValueError(f"formula {formula!r}: the number {str(v)[:20]}... is too large") from None
    if isinstance(node, ast.Name):
        return _CONST_VALUES.get(node.id)
    if isinstance(node, ast.UnaryOp):
        v = _const(node.operand, formula)
        if v is None or not isinstance(node.op, ast.USub | ast.UAdd):
            return None
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        a, b = _const(node.left, formula), _const(node.right, formula)
        if isinstance(node.op, ast.Pow) and b is not None and abs(b) > MAX_EXPONENT:
            raise ValueError(f"formula {formula!r}: the exponent {b:g} is larger than {MAX_EXPONENT} in size")
        op = _BINOPS.get(type(node.op))
        if a is None or b is None or op is None:
            return None
        try:
            v = op(a, b)
        except OverflowError:
            raise ValueError(f"formula {formula!r}: a constant is too large ({ast.unparse(node)[:40]})") from None
        except ZeroDivisionError:
            raise ValueError(f"formula {formula!r}: division by zero ({ast.unparse(node)[:40]})") from None
        if isinstance(v, complex):
            return None
        return _finite(float(v), formula, f"the constant {ast.unparse(node)[:40]}")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _MATH:
        args = [_const(a, formula) for a in node.args]
        if len(args) != 1 or args[0] is None:
            return None
        try:
            v = _MATH[node.func.id](args[0])
        except OverflowError:
            raise ValueError(f"formula {formula!r}: {ast.unparse(node)[:40]} is too large") from None
        except ValueError:  # outside the real domain: SymPy's value (complex) is refused later
            return None
        return _finite(float(v), formula, ast.unparse(node)[:40])
    for child in ast.iter_child_nodes(node):
        _const(child, formula)
    return None


class _Timeout(BaseException):  # not caught by the parser's `except Exception`
    pass


@contextlib.contextmanager
def _time_limit(seconds: float, formula: str) -> Iterator[None]:
    """Refuse a formula whose symbolic processing takes more than ``seconds`` (main thread only)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise _Timeout

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Timeout:
        raise ValueError(f"formula {formula!r} is too complex: parsing and differentiating it took more "
                         f"than {seconds:g} s") from None  # fmt: skip
    except RecursionError:
        raise ValueError(f"formula {formula!r} is too deeply nested") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def parse_formula(formula: str):  # type: ignore[no-untyped-def]
    """``(expr, symbols)``: the SymPy expression and its variables in coordinate order."""
    import sympy
    from sympy.parsing.sympy_parser import auto_number, convert_xor, parse_expr

    if not isinstance(formula, str):
        raise ValueError(f"a formula must be a string, got {type(formula).__name__}")
    text = formula.strip()
    if not text:
        raise ValueError("the formula is empty")
    if len(text) > _MAX_LEN:
        raise ValueError(f"the formula is longer than {_MAX_LEN} characters")
    if not _ALLOWED_CHARS.match(text):
        bad = sorted({ch for ch in text if not _ALLOWED_CHARS.match(ch)})
        raise ValueError(f"formula {formula!r}: characters not allowed: {''.join(bad)!r}")
    if "__" in text:
        raise ValueError(f"formula {formula!r}: '__' is not allowed")
    variables, _ = _names(text)
    if not variables:
        raise ValueError(f"formula {formula!r} has no variables")
    _check_bounds(text, text if len(text) <= 60 else text[:57] + "...", len(variables))
    symbols = [sympy.Symbol(v, real=True) for v in variables]
    local: dict[str, Any] = dict(zip(variables, symbols, strict=True))
    local.update({k: getattr(sympy, v) for k, v in FUNCTIONS.items()})
    local.update({k: getattr(sympy, v) for k, v in CONSTANTS.items()})
    glob: dict[str, Any] = {"__builtins__": {}, "Integer": sympy.Integer, "Float": sympy.Float,
                            "Rational": sympy.Rational, "Symbol": sympy.Symbol}  # fmt: skip
    try:
        expr = parse_expr(text, local_dict=local, global_dict=glob, transformations=(auto_number, convert_xor))
    except Exception as exc:  # any parse failure is the user's formula
        raise ValueError(f"cannot parse formula {formula!r}: {type(exc).__name__}: {exc}") from None
    if not isinstance(expr, sympy.Expr) or isinstance(expr, sympy.Tuple):
        raise ValueError(f"formula {formula!r} is not a scalar expression")
    if expr.has(sympy.I) or expr.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan):
        raise ValueError(f"formula {formula!r} does not have a finite real value (got {expr})")
    if not expr.free_symbols:
        raise ValueError(f"formula {formula!r} has no variables (it simplifies to {expr})")
    for num in expr.atoms(sympy.Number):  # e.g. 1e300*x*1e300, folded by SymPy
        if not math.isfinite(float(num)):
            raise ValueError(f"formula {formula!r}: the constant {str(num)[:40]} is not a finite float")
    # a variable that cancels out still counts as a coordinate (e.g. 'x + y - y')
    return expr, symbols


def _printer_class():  # type: ignore[no-untyped-def]
    from sympy import S
    from sympy.printing.precedence import PRECEDENCE
    from sympy.printing.pycode import PythonCodePrinter

    class KernelPrinter(PythonCodePrinter):
        """Python source for math functions: every number as ``real(c, x)``."""

        def _real(self, value: float) -> str:
            return f"real({float(value)!r}, x)"

        def _print_Integer(self, expr):  # type: ignore[no-untyped-def]
            return self._real(int(expr))

        def _print_Rational(self, expr):  # type: ignore[no-untyped-def]
            return self._real(float(expr))

        def _print_Float(self, expr):  # type: ignore[no-untyped-def]
            return self._real(float(expr))

        _print_Zero = _print_One = _print_NegativeOne = _print_Integer
        _print_Half = _print_Rational

        def _print_NumberSymbol(self, expr):  # type: ignore[no-untyped-def]
            return self._real(float(expr))

        _print_Pi = _print_Exp1 = _print_NumberSymbol

        def _unsupported(self, expr):  # type: ignore[no-untyped-def]
            raise ValueError(f"the formula's value or derivatives contain {expr}, which has no real kernel form")

        _print_ImaginaryUnit = _print_Infinity = _print_NegativeInfinity = _unsupported
        _print_ComplexInfinity = _print_NaN = _print_Derivative = _print_Subs = _unsupported

        def _print_sign(self, expr):  # type: ignore[no-untyped-def]
            return f"math.copysign(real(1.0, x), {self._print(expr.args[0])})"

        def _print_DiracDelta(self, expr):  # type: ignore[no-untyped-def]
            return self._real(0.0)  # zero almost everywhere (Hessian of abs)

        def _print_Pow(self, expr, rational=False):  # type: ignore[no-untyped-def]
            base, e = expr.base, expr.exp
            if base == S.Exp1:
                return f"math.exp({self._print(e)})"
            if e == S.Half:
                return f"math.sqrt({self._print(base)})"
            if e == -S.Half:
                return f"(real(1.0, x) / math.sqrt({self._print(base)}))"
            b = self.parenthesize(base, PRECEDENCE["Atom"], strict=True)
            if e.is_Integer and 1 <= abs(int(e)) <= 8:
                chain = "*".join([b] * abs(int(e)))
                return f"({chain})" if int(e) > 0 else f"(real(1.0, x) / ({chain}))"
            return f"{b}**{self.parenthesize(e, PRECEDENCE['Atom'], strict=True)}"

    return KernelPrinter


def _function_source(name: str, out_kind: str, exprs, entries, symbols) -> str:  # type: ignore[no-untyped-def]
    """One math function: ``exprs`` written to ``entries`` (index strings) for each particle."""
    import sympy

    printer = _printer_class()({"fully_qualified_modules": True, "standard": "python3"})
    local_syms = [sympy.Symbol(f"v_{k}", real=True) for k in range(len(symbols))]
    sub = dict(zip(symbols, local_syms, strict=True))
    exprs = [sympy.sympify(e).xreplace(sub) for e in exprs]
    repl, reduced = sympy.cse(exprs, symbols=sympy.numbered_symbols("t_"), optimizations="basic")
    lines = [
        "@math_function",
        f"def {name}(x, p, w, {out_kind}, lo, hi):",
        "    for i in range(lo, hi):",
    ]
    used = set().union(*(e.free_symbols for e in exprs)) | set().union(*(r.free_symbols for _, r in repl))
    for k, s in enumerate(local_syms):
        if s in used:
            lines.append(f"        v_{k} = x[{k}, i]")
    for sym, rhs in repl:
        lines.append(f"        {sym} = {printer.doprint(rhs)}")
    for idx, e in zip(entries, reduced, strict=True):
        lines.append(f"        {out_kind}[{idx}] = {printer.doprint(e)}")
    if printer._not_supported:
        bad = ", ".join(sorted(str(e) for e in printer._not_supported))
        raise ValueError(f"the formula's value or derivatives use functions with no kernel form: {bad}")
    return "\n".join(lines) + "\n"


def generate_source(formula: str) -> tuple[str, list[str]]:
    """``(module source, variable names)`` of the math functions of ``formula``."""
    import sympy

    expr, symbols = parse_formula(formula)
    dim = len(symbols)
    grads = [sympy.diff(expr, s) for s in symbols]
    hess_entries, hess_idx = [], []
    for r in range(dim):
        for c in range(dim):
            hess_entries.append(sympy.diff(grads[r], symbols[c]) if c >= r else None)
            hess_idx.append(f"{r}, {c}, i")
    # symmetric: compute the upper triangle, mirror it
    upper = [(e, idx) for e, idx in zip(hess_entries, hess_idx, strict=True) if e is not None]
    names = [str(s) for s in symbols]
    parts = [
        f'"""Generated by descentlab.landscapes.formula (generator {GENERATOR_VERSION}) - do not edit.',
        "",
        f"Formula: {formula.strip()}",
        f"Variables (coordinate order): {', '.join(names)}",
        '"""',
        "",
        "import math",
        "",
        "from descentlab._jit import math_function, real",
        "",
        f"FORMULA = {formula.strip()!r}",
        f"VARIABLES = {tuple(names)!r}",
        "",
        "",
        _function_source("value", "out", [expr], ["i"], symbols),
        "",
        _function_source("grad", "g", grads, [f"{k}, i" for k in range(dim)], symbols),
        "",
        _function_source("hess", "h", [e for e, _ in upper], [idx for _, idx in upper], symbols),
    ]
    src = "\n".join(parts)
    if dim > 1:  # mirror the lower triangle inside the same particle loop
        mirror = "".join(f"        h[{c}, {r}, i] = h[{r}, {c}, i]\n" for r in range(dim) for c in range(r + 1, dim))
        src = src + mirror
    return src + "\n\n_ = math\n", names


def cache_dir() -> Path:
    """Where generated formula modules live: ``$DESCENTLAB_CACHE/formulas`` or ``~/.cache/descentlab/formulas``."""
    root = os.environ.get("DESCENTLAB_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "descentlab"
    return base / "formulas"


def _load_module(formula: str, source: str):  # type: ignore[no-untyped-def]
    digest = hashlib.sha256(formula.strip().encode()).hexdigest()
    mod_name = f"descentlab_formula_{digest[:16]}"
    mod = sys.modules.get(mod_name)
    if mod is not None and getattr(mod, "FORMULA", None) == formula.strip():
        return mod
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"f_{digest}.py"
    try:
        current = path.read_text()
    except OSError:
        current = None
    if current != source:  # write atomically: other processes may import it concurrently
        tmp = folder / f".f_{digest}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(source)
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py path always has a loader
        raise ImportError(f"cannot import generated formula module {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[mod_name]
        raise
    return mod


def formula_landscape(formula: str) -> Landscape:
    """A :class:`Landscape` named ``formula`` for a user formula (memoised per formula).

    Raises ``ValueError`` with a message for an unparseable formula, one without
    variables, with an unknown function, or without a finite real value.
    """
    if not isinstance(formula, str):
        raise ValueError(f"a formula must be a string, got {type(formula).__name__}")
    key = formula.strip()
    with _LOCK:
        land = _MEMO.get(key)
        if land is not None:
            return land
        with _time_limit(TIME_LIMIT, key[:80]):
            source, names = generate_source(formula)
        try:
            mod = _load_module(formula, source)
        except OSError as exc:
            raise ValueError(f"cannot write the generated module to the cache folder {cache_dir()} "
                             f"(set DESCENTLAB_CACHE to a writable folder): {exc.strerror or exc}") from None
        land = Landscape(
            name="formula",
            description=f"user formula {key}",
            dim=len(names),
            params={},
            value=mod.value,
            grad=mod.grad,
            hess=mod.hess,
            init_box=(-5.0, 5.0),
            scale=5.0,
            spec_entry={"formula": key},
            variables=tuple(names),
            module=mod.__name__,
        )
        _MEMO[key] = land
        return land

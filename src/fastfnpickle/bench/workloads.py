"""The benchmark workloads: what ``python -m fastfnpickle bench`` and ``bench/`` pickle.

Functions and classes that must travel by value are compiled into a synthetic module named
``__main__`` that is *not* ``sys.modules["__main__"]``: every serializer then has to pickle them
by value, exactly as it would for code typed into a script or notebook, while the stdlib
``pickle`` fails on them (the harness reports it as n/a). The data-only workloads use
:class:`PlainRecord`, defined here so every serializer can import it by reference.

Each workload has a ``check(obj, scale)`` that validates an object *loaded* from a pickle; it
depends only on this (importable) module, so a fresh interpreter can run it too.
"""

import builtins
import contextlib
import dataclasses
import itertools
import sys
import types
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Optional, Tuple

FAMILIES = ("functions", "classes", "data")


@dataclasses.dataclass(frozen=True)
class Workload:
    """One thing to pickle, and how to tell that its pickle loaded correctly."""

    name: str
    family: str
    description: str
    build: Callable[[float], Any]
    """``build(scale)``: the object; a list of objects when ``per_call``."""
    check: Optional[Callable[[Any, float], None]]
    """``check(loaded, scale)`` raises AssertionError on a wrong result; for ``per_call``
    workloads ``loaded`` maps a few sampled call indices to their loaded objects."""
    per_call: bool = False
    """Each element of the built list goes through its own ``dumps``/``loads`` call."""
    out_of_band: bool = False
    """Pickled with protocol 5 and a ``buffer_callback`` (large buffers travel beside it)."""
    functions: bool = False
    """The object is a function or a list of functions (the marshal floor applies)."""
    requires: Tuple[str, ...] = ()
    """Modules that must import for the workload to run (else it is skipped)."""
    environment: Callable[[float], ContextManager[Any]] = lambda scale: contextlib.nullcontext()
    """Context active while the workload is pickled (e.g. a padded ``sys.modules``)."""
    fresh: Optional[Callable[[Any], Any]] = None
    """Cold workloads: ``fresh(obj)`` is an equivalent object with new code objects, so no
    per-code-object cache (ours or cloudpickle's) has seen it; every timed ``dumps`` gets one.
    Without it, the same object is pickled again and again (caches warm)."""

    def missing(self) -> Optional[str]:
        """The first required module that does not import, or None."""
        for name in self.requires:
            try:
                __import__(name)
            except ImportError:
                return name
        return None


def scaled(base: int, scale: float) -> int:
    """``base`` items at ``scale`` (at least one)."""
    return max(1, int(base * scale))


def dynamic_module(source: str, label: str) -> types.ModuleType:
    """Run ``source`` in a fresh module named ``__main__`` that no import can find."""
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    exec(compile(source, f"<fastfnpickle-bench:{label}>", "exec"), module.__dict__)
    return module


_renewals = itertools.count(1)


def _renewed(code: Any) -> Any:
    return code.replace(co_firstlineno=code.co_firstlineno + next(_renewals) % 100_000)


def fresh_function(func: Any, code: Any = None) -> Any:
    """A copy of ``func`` with a new code object, cold for every code-keyed cache.

    The copy's first line number differs, because code objects compare (and hash) by value and
    a cache may be keyed by equality (cloudpickle's is). Only the function itself is renewed;
    functions it reaches through its globals stay as they are. ``code``: use this (renewed)
    code object instead of making one.
    """
    if code is None:
        code = _renewed(func.__code__)
    copy = types.FunctionType(code, func.__globals__, func.__name__,
                              func.__defaults__, func.__closure__)
    copy.__qualname__ = func.__qualname__
    copy.__kwdefaults__ = func.__kwdefaults__
    copy.__doc__ = func.__doc__
    if func.__dict__:
        copy.__dict__.update(func.__dict__)
    return copy


def fresh_functions(funcs: List[Any]) -> List[Any]:
    """:func:`fresh_function` of each; functions that shared a code object share its renewal."""
    renewed: Dict[int, Any] = {}
    out = []
    for f in funcs:
        code = renewed.get(id(f.__code__))
        if code is None:
            code = renewed[id(f.__code__)] = _renewed(f.__code__)
        out.append(fresh_function(f, code))
    return out


# --------------------------------------------------------------------------------------------
# Functions

_LAMBDA_SRC = "square_plus_one = lambda x: x * x + 1\n"


def _build_lambda(scale: float) -> Any:
    return dynamic_module(_LAMBDA_SRC, "lambda").square_plus_one


def _check_lambda(f: Any, scale: float) -> None:
    assert f(7) == 50, f(7)


_CLOSURE_SRC = '''
def make_scaler(factor, offset, label):
    unit = len(label)
    def scale(x):
        return (x * factor + offset) * unit
    return scale

scaler = make_scaler(3, 4, "abc")
'''


def _build_closure(scale: float) -> Any:
    return dynamic_module(_CLOSURE_SRC, "closure").scaler


def _check_closure(f: Any, scale: float) -> None:
    assert len(f.__closure__) == 3
    assert f(2) == 30, f(2)


_GLOBALS_SRC = '''
import math
RATE = 0.25
LIMITS = (0, 100)
UNITS = {"m": 1.0, "km": 1000.0}

def clamp(x):
    low, high = LIMITS
    return min(max(x, low), high)

def convert(value, unit="km"):
    """Convert to metres, damp, clamp."""
    return clamp(math.floor(value * UNITS[unit] * RATE))
'''


def _build_globals(scale: float) -> Any:
    return dynamic_module(_GLOBALS_SRC, "globals").convert


def _check_globals(f: Any, scale: float) -> None:
    assert f(0.2) == 50, f(0.2)
    assert f(3, "m") == 0
    assert f.__doc__ == "Convert to metres, damp, clamp."


_CLOSURES = 10_000


def _closure_list_source(n: int) -> str:
    # Every function gets its own source text, hence its own code object: nothing is shared
    # between them but the module globals.
    parts = ["_made = []\n"]
    for i in range(n):
        if i % 2:
            parts.append(f"_made.append(lambda x: x * {i} - {i % 7})\n")
        else:
            parts.append(
                f"def _factory_{i}(a, b):\n"
                f"    def f_{i}(x):\n"
                f"        return a * x + b + {i}\n"
                f"    return f_{i}\n"
                f"_made.append(_factory_{i}({i % 5}, {i % 3}))\n"
                f"del _factory_{i}\n"
            )
    return "".join(parts)


def _closure_expected(i: int, x: int) -> int:
    if i % 2:
        return x * i - i % 7
    return (i % 5) * x + (i % 3) + i


def _build_closures(scale: float) -> Any:
    module = dynamic_module(_closure_list_source(scaled(_CLOSURES, scale)), "closures")
    made = module._made
    del module._made  # the list is the object pickled, not a global the functions read
    return made


def _check_closures(fs: Any, scale: float) -> None:
    n = scaled(_CLOSURES, scale)
    assert isinstance(fs, list) and len(fs) == n, len(fs)
    codes = set()
    for i in sorted({0, 1, n // 2, n - 2, n - 1}):
        if not 0 <= i < n:
            continue
        assert fs[i](3) == _closure_expected(i, 3), (i, fs[i](3))
    for f in fs[:50]:
        codes.add(id(f.__code__))
    assert len(codes) == min(n, 50)


_LAMBDAS = 10_000

# Generated tasks: each lambda its own source text (its own code object, constants and line),
# in a handful of shapes, the way code generated per task looks.
_LAMBDA_SHAPES: Tuple[Tuple[str, Callable[[int, int, int], int]], ...] = (
    ("x * {a} + {b}", lambda x, a, b: x * a + b),
    ("(x + {a}) * {b}", lambda x, a, b: (x + a) * b),
    ("x - {a} * {b}", lambda x, a, b: x - a * b),
    ("abs(x - {a}) + {b}", lambda x, a, b: abs(x - a) + b),
    ("max(x, {a}) - min(x, {b})", lambda x, a, b: max(x, a) - min(x, b)),
)


def _lambda_args(i: int) -> Tuple[str, Callable[[int, int, int], int], int, int]:
    text, func = _LAMBDA_SHAPES[i % len(_LAMBDA_SHAPES)]
    return text, func, i, i % 7 + 1


def _lambda_list_source(n: int) -> str:
    parts = ["_made = []\n"]
    for i in range(n):
        text, _, a, b = _lambda_args(i)
        parts.append(f"_made.append(lambda x: {text.format(a=a, b=b)})\n")
    return "".join(parts)


def _build_lambdas(scale: float) -> Any:
    module = dynamic_module(_lambda_list_source(scaled(_LAMBDAS, scale)), "lambdas")
    made = module._made
    del module._made
    return made


def _check_lambdas(fs: Any, scale: float) -> None:
    n = scaled(_LAMBDAS, scale)
    assert isinstance(fs, list) and len(fs) == n, len(fs)
    for i in sorted({0, 1, 2, 3, 4, n // 2, n - 1}):
        if 0 <= i < n:
            _, func, a, b = _lambda_args(i)
            assert fs[i](3) == func(3, a, b), (i, fs[i](3))
    assert len({id(f.__code__) for f in fs[:50]}) == min(n, 50)


_FACTORY_SRC = '''
def make_task(k, bias):
    def task(x):
        return x * k + bias
    return task

_made = [make_task(i, i % 11) for i in range(_N)]
'''


def _build_factory_closures(scale: float) -> Any:
    src = _FACTORY_SRC.replace("_N", str(scaled(_CLOSURES, scale)))
    module = dynamic_module(src, "factory")
    made = module._made
    del module._made
    return made


def _check_factory_closures(fs: Any, scale: float) -> None:
    n = scaled(_CLOSURES, scale)
    assert isinstance(fs, list) and len(fs) == n, len(fs)
    for i in sorted({0, 1, n // 2, n - 1}):
        assert fs[i](3) == 3 * i + i % 11, (i, fs[i](3))


_SAME_CALLS = 10_000

_TASK_SRC = '''
import math
OFFSET = 1.5

def task(x, weight=2.0):
    return math.sqrt(x) * weight + OFFSET
'''


def _build_same_fn(scale: float) -> Any:
    task = dynamic_module(_TASK_SRC, "task").task
    return [task] * scaled(_SAME_CALLS, scale)


def _check_same_fn(loaded: Dict[int, Any], scale: float) -> None:
    for f in loaded.values():
        assert f(16.0) == 9.5, f(16.0)
        assert f(16.0, 1.0) == 5.5


_PACKAGES_SRC = '''
import json
import numpy as np
import xml.etree.ElementTree

def report(values):
    arr = np.asarray(values, dtype=float)
    root = xml.etree.ElementTree.Element("report")
    root.set("mean", json.dumps(float(arr.mean())))
    root.set("norm", json.dumps(round(float(np.linalg.norm(arr)), 6)))
    return xml.etree.ElementTree.tostring(root, encoding="unicode")
'''


def _build_packages(scale: float) -> Any:
    return dynamic_module(_PACKAGES_SRC, "packages").report


def _check_packages(f: Any, scale: float) -> None:
    out = f([3, 4])
    assert out == '<report mean="3.5" norm="5.0" />', out


_PAD_MODULES = 20_000


@contextlib.contextmanager
def padded_sys_modules(scale: float) -> Iterator[None]:
    """``sys.modules`` with 20,000 extra (dummy, top-level) entries while active."""
    names = [f"_fastfnpickle_bench_pad_{i}" for i in range(scaled(_PAD_MODULES, scale))]
    for name in names:
        sys.modules[name] = types.ModuleType(name)
    try:
        yield
    finally:
        for name in names:
            sys.modules.pop(name, None)


_ARRAY_SRC = '''
def make_weighted_sum(weights):
    def weighted_sum(factor):
        return float(weights.sum()) * factor
    return weighted_sum
'''

_ARRAY_LEN = 1_000_000


def _build_array_closure(scale: float) -> Any:
    import numpy as np

    weights = np.arange(scaled(_ARRAY_LEN, scale), dtype=np.float64)
    return dynamic_module(_ARRAY_SRC, "array").make_weighted_sum(weights)


def _check_array_closure(f: Any, scale: float) -> None:
    n = scaled(_ARRAY_LEN, scale)
    weights = f.__closure__[0].cell_contents
    assert weights.shape == (n,) and weights.dtype.name == "float64"
    assert f(2.0) == float(n * (n - 1)), f(2.0)


# --------------------------------------------------------------------------------------------
# Classes

_CLASS_SRC = '''
class Account:
    """A bank account."""

    currency = "EUR"
    fee_rate = 0.01

    def __init__(self, owner, balance=0.0):
        self.owner = owner
        self.balance = balance

    def deposit(self, amount):
        self.balance += amount - self.fee(amount)
        return self

    @property
    def rich(self):
        return self.balance > 1000

    @classmethod
    def empty(cls, owner):
        return cls(owner)

    @staticmethod
    def fee(amount):
        return amount * Account.fee_rate

    def __repr__(self):
        return f"Account({self.owner!r}, {self.balance!r} {self.currency})"
'''


def _build_class(scale: float) -> Any:
    return dynamic_module(_CLASS_SRC, "class").Account


def _check_class(cls: Any, scale: float) -> None:
    acct = cls.empty("ada").deposit(2000.0)
    assert acct.balance == 1980.0 and acct.rich
    assert repr(acct) == "Account('ada', 1980.0 EUR)"
    assert cls.__doc__ == "A bank account."


_ENUM_SRC = '''
import enum

class Color(enum.Enum):
    RED = 1
    GREEN = 2
    BLUE = 3

    def describe(self):
        return f"{self.name.lower()}={self.value}"

    @property
    def warm(self):
        return self is Color.RED
'''


def _build_enum(scale: float) -> Any:
    color = dynamic_module(_ENUM_SRC, "enum").Color
    return [color, color.GREEN, color.RED]


def _check_enum(obj: Any, scale: float) -> None:
    import enum

    color, green, red = obj
    assert issubclass(color, enum.Enum) and [m.name for m in color] == ["RED", "GREEN", "BLUE"]
    assert green is color.GREEN and red is color(1)
    assert green.describe() == "green=2" and red.warm and not green.warm


_DATACLASS_SRC = '''
from dataclasses import dataclass, field

@dataclass
class Sample:
    ident: int
    value: float
    label: str
    tags: tuple = ()

    def scaled(self, k):
        return self.value * k
'''

_INSTANCES = 1_000


def _build_instances(scale: float) -> List[Any]:
    sample = dynamic_module(_DATACLASS_SRC, "dataclass").Sample
    return [sample(i, i * 0.5, f"s{i}", ("a", i % 3)) for i in range(scaled(_INSTANCES, scale))]


def _check_one_instance(i: int, loaded: Any) -> None:
    assert dataclasses.is_dataclass(loaded) and type(loaded).__name__ == "Sample"
    obj: Any = loaded  # is_dataclass narrows to a type without the fields
    assert (obj.ident, obj.value, obj.label, obj.tags) == (i, i * 0.5, f"s{i}", ("a", i % 3))
    assert obj.scaled(2) == i * 1.0


def _check_instance_list(objs: Any, scale: float) -> None:
    n = scaled(_INSTANCES, scale)
    assert isinstance(objs, list) and len(objs) == n
    assert len({type(o) for o in objs}) == 1
    for i in {0, n // 2, n - 1}:
        _check_one_instance(i, objs[i])


def _check_instance_calls(loaded: Dict[int, Any], scale: float) -> None:
    for i, obj in loaded.items():
        _check_one_instance(i, obj)


# --------------------------------------------------------------------------------------------
# Data with no functions at all

class PlainRecord:
    """An importable plain class: every serializer pickles its instances by reference."""

    def __init__(self, ident: int, name: str, score: float) -> None:
        self.ident = ident
        self.name = name
        self.score = score


_RECORDS = 100_000


def _build_records(scale: float) -> Any:
    return [PlainRecord(i, f"r{i}", i / 7) for i in range(scaled(_RECORDS, scale))]


def _check_records(objs: Any, scale: float) -> None:
    n = scaled(_RECORDS, scale)
    assert isinstance(objs, list) and len(objs) == n
    for i in {0, n // 2, n - 1}:
        r = objs[i]
        assert type(r) is PlainRecord and (r.ident, r.name, r.score) == (i, f"r{i}", i / 7)


_DICT_SIZE = 100_000


def _build_dict(scale: float) -> Any:
    return {f"key{i}": i * 0.1 for i in range(scaled(_DICT_SIZE, scale))}


def _check_dict(d: Any, scale: float) -> None:
    n = scaled(_DICT_SIZE, scale)
    assert isinstance(d, dict) and len(d) == n
    for i in {0, n // 2, n - 1}:
        assert d[f"key{i}"] == i * 0.1


# --------------------------------------------------------------------------------------------

WORKLOADS: Dict[str, Workload] = {w.name: w for w in [
    Workload("lambda", "functions", "one small lambda from __main__",
             _build_lambda, _check_lambda, functions=True, fresh=fresh_function),
    Workload("closure", "functions", "a closure with 3 cells",
             _build_closure, _check_closure, functions=True, fresh=fresh_function),
    Workload("global-refs", "functions",
             "a function reading module globals (constants, a dict, a module, a helper)",
             _build_globals, _check_globals, functions=True, fresh=fresh_function),
    Workload("closures-10k", "functions",
             "10,000 distinct closures/lambdas (distinct code objects) in one list",
             _build_closures, _check_closures, functions=True, fresh=fresh_functions),
    Workload("lambdas-10k", "functions",
             "10,000 distinct exec'd lambdas (generated source, one per task) in one list",
             _build_lambdas, _check_lambdas, functions=True, fresh=fresh_functions),
    Workload("factory-closures-10k", "functions",
             "10,000 closures from one factory (one shared code object) in one list",
             _build_factory_closures, _check_factory_closures, functions=True,
             fresh=fresh_functions),
    Workload("same-fn-10k-calls", "functions",
             "the same function pickled in 10,000 separate dumps calls",
             _build_same_fn, _check_same_fn, per_call=True, functions=True),
    Workload("big-packages", "functions", "a function using numpy, json and xml.etree",
             _build_packages, _check_packages, functions=True, requires=("numpy",),
             fresh=fresh_function),
    Workload("big-packages-20k-modules", "functions",
             "the same, with 20,000 extra entries in sys.modules",
             _build_packages, _check_packages, functions=True, requires=("numpy",),
             environment=padded_sys_modules, fresh=fresh_function),
    Workload("numpy-closure-oob", "functions",
             "a closure over 1e6 float64 (protocol 5, buffers out of band)",
             _build_array_closure, _check_array_closure, out_of_band=True, functions=True,
             requires=("numpy",), fresh=fresh_function),
    Workload("dynamic-class", "classes",
             "a __main__ class with methods, a property, a classmethod, a staticmethod",
             _build_class, _check_class),
    Workload("enum", "classes", "a __main__ Enum class and two of its members",
             _build_enum, _check_enum),
    Workload("dataclass-1k-list", "classes", "1,000 instances of a __main__ dataclass in one list",
             _build_instances, _check_instance_list),
    Workload("dataclass-1k-calls", "classes",
             "1,000 instances of a __main__ dataclass, one dumps call each",
             _build_instances, _check_instance_calls, per_call=True),
    Workload("plain-objects-100k", "data",
             "100,000 instances of an importable plain class in one list",
             _build_records, _check_records),
    Workload("dict-100k", "data", "a dict of 100,000 str -> float",
             _build_dict, _check_dict),
]}


def user_workload(spec: str) -> Workload:
    """A workload for ``--object module:attr`` (attr may be dotted); it has no check."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--object expects module:attr, got {spec!r}")

    def build(scale: float) -> Any:
        import importlib

        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj

    return Workload(f"object:{spec}", "user", f"your object {spec}", build, None)

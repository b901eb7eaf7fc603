"""Which implementation ``import fastfnpickle`` selects, and which names pickles reference.

- A plain import picks the compiled core when it is built; ``FASTFNPICKLE_NO_EXTENSIONS``
  forces the pure twin for 1/true/yes/on only (any case, surrounding space ignored).
- ``IMPLEMENTATION`` reports what loaded: with the compiled core hidden from the import
  system it says "python" and the pure twins are the ones in use.
- CI canary: with CI=true and no opt-out, the compiled core must be active.
- Pickles name only ``fastfnpickle._rebuild`` inside the package, never a twin module, so a
  pickle made by one implementation loads under the other and under a pure install.
"""

import functools
import importlib.util
import io
import os
import pickle
import pickletools
import textwrap
import types
from typing import Any, Dict, List, Optional, Tuple

import pytest
from conftest import PACKAGE_DIR, child_pythonpath, load_in_subprocess, run_python

import fastfnpickle
from fastfnpickle._env import env_flag

NO_EXT = "FASTFNPICKLE_NO_EXTENSIONS"
COMPILED_BUILT = (importlib.util.find_spec("fastfnpickle._core") is not None
                  and importlib.util.find_spec("fastfnpickle._load") is not None)
IN_CI_WITHOUT_OPT_OUT = env_flag("CI") and not env_flag(NO_EXT)


def require_compiled() -> None:
    """Skip when the compiled core is not built, except in CI where that is a failure."""
    if COMPILED_BUILT:
        return
    if IN_CI_WITHOUT_OPT_OUT:
        pytest.fail("compiled core not built in CI (set FASTFNPICKLE_NO_EXTENSIONS=1 to opt out)")
    pytest.skip("compiled core not built (pure-Python install)")


def child_env(no_extensions: Optional[str]) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = child_pythonpath(env.get("PYTHONPATH", ""))
    env.pop(NO_EXT, None)
    if no_extensions is not None:
        env[NO_EXT] = no_extensions
    return env


# Prints what the dispatcher chose and which twin modules are actually bound, after a round
# trip through the active implementation (a selection that imports but cannot pickle is no good).
REPORT = """
import pickle, sys
import fastfnpickle
from fastfnpickle import _impl, _rebuild

def scale(k):
    return lambda x: x * k

f = pickle.loads(fastfnpickle.dumps(scale(3)))
assert f(5) == 15, f(5)
print(fastfnpickle.IMPLEMENTATION, _impl.core.__name__, _rebuild._load.__name__,
      fastfnpickle.Pickler is _impl.core.Pickler)
"""

CYTHON_REPORT = "cython fastfnpickle._core fastfnpickle._load True"
PYTHON_REPORT = "python fastfnpickle._core_py fastfnpickle._load_py True"


def selection(no_extensions: Optional[str], preamble: str = "") -> str:
    code = textwrap.dedent(preamble) + textwrap.dedent(REPORT)
    return run_python(code, env=child_env(no_extensions)).strip()


# --------------------------------------------------------------------------------------------
# Import-time selection

@pytest.mark.cython
def test_plain_import_picks_compiled_core() -> None:
    require_compiled()
    assert selection(None) == CYTHON_REPORT


@pytest.mark.cython
@pytest.mark.parametrize("value", ["1", "true", "YES", " on ", "On\n", "TRUE"])
def test_env_var_forces_pure_twin(value: str) -> None:
    require_compiled()  # without the compiled core "python" would be chosen anyway
    assert selection(value) == PYTHON_REPORT


@pytest.mark.cython
@pytest.mark.parametrize("value", ["0", "false", "", "no", "off", "2", "enabled"])
def test_other_env_values_keep_compiled_core(value: str) -> None:
    require_compiled()
    assert selection(value) == CYTHON_REPORT


BLOCKER = """
import sys

class _Blocker:
    # Acts as if the compiled module had never been built.
    def find_spec(self, name, path=None, target=None):
        if name == {blocked!r}:
            raise ModuleNotFoundError("blocked by the test: " + name, name=name)
        return None

sys.meta_path.insert(0, _Blocker())
"""


@pytest.mark.cython
@pytest.mark.parametrize("blocked, report", [
    # The load side chooses its twin on its own (it never imports the dump side), so a missing
    # compiled pickler leaves the compiled loader in use; IMPLEMENTATION says "cython" only
    # when both compiled halves are.
    ("fastfnpickle._core", "python fastfnpickle._core_py fastfnpickle._load True"),
    # Without the compiled loader the pure pickler is used too: one half compiled would be
    # a combination nobody tests.
    ("fastfnpickle._load", PYTHON_REPORT),
])
def test_implementation_reports_what_loaded(blocked: str, report: str) -> None:
    # Nothing asks for the pure twin here: the compiled module just fails to import, and
    # IMPLEMENTATION must say what is really in use.
    require_compiled()
    assert selection(None, BLOCKER.format(blocked=blocked)) == report


def test_ci_canary_compiled_core_active() -> None:
    if not env_flag("CI"):
        pytest.skip("canary runs in CI only (CI=true)")
    if env_flag(NO_EXT):
        pytest.skip(f"{NO_EXT} is set: the pure twin was asked for")
    assert fastfnpickle.IMPLEMENTATION == "cython", (
        "CI must test the compiled core: it did not import (build with "
        "FASTFNPICKLE_REQUIRE_EXTENSIONS=1, or set FASTFNPICKLE_NO_EXTENSIONS=1 to opt out)")


def test_children_import_the_package_under_test(impl: Any) -> None:
    # Every helper interpreter the suite starts loads the package this process tests: run
    # against an installed wheel, a source tree beside the tests must not stand in for it (a
    # child importing another copy would test that copy, possibly the other twin).
    code = ("import os, fastfnpickle; "
            "print(os.path.dirname(os.path.realpath(fastfnpickle.__file__))); "
            "print(fastfnpickle.IMPLEMENTATION)")
    where, implementation = run_python(code, env=impl.env()).split()
    assert where == os.path.realpath(PACKAGE_DIR)
    assert implementation == impl.name


def test_in_process_selection_matches_environment() -> None:
    # The process running the suite: the pure twin exactly when it was asked for or when the
    # compiled core is not built.
    from fastfnpickle import _core_py, _impl

    if env_flag(NO_EXT) or not COMPILED_BUILT:
        assert fastfnpickle.IMPLEMENTATION == "python"
        assert _impl.core is _core_py
    else:
        assert fastfnpickle.IMPLEMENTATION == "cython"
        assert _impl.core.__name__ == "fastfnpickle._core"


# --------------------------------------------------------------------------------------------
# Names referenced by pickles

DYN_SOURCE = """
import enum, typing, math, xml.etree.ElementTree

T = typing.TypeVar("T", bound=int)
SCALE = 10

def plain(x, y=2, *, z=3) -> int:
    "docstring"
    return x * y + z

square = lambda x: x * x

def make_counter(start):
    count = start
    def step():
        nonlocal count
        count += 1
        return count
    return step

def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)

def uses_modules(x):
    return math.floor(x) + len(xml.etree.ElementTree.__name__)

def uses_sets(x):
    return x in {1, 2, 3} and x not in frozenset({"a", "b"})

def gen(n):
    yield from range(n)

async def coro():
    return SCALE

class Point:
    dims = 2
    def __init__(self, x, y):
        self.x, self.y = x, y
    def norm2(self):
        return self.x * self.x + self.y * self.y
    @classmethod
    def origin(cls):
        return cls(0, 0)
    @staticmethod
    def scale():
        return SCALE
    @property
    def swapped(self):
        return Point(self.y, self.x)

class Color(enum.Enum):
    RED = 1
    GREEN = 2
"""


def dyn_namespace(module_name: str) -> Dict[str, Any]:
    """Run DYN_SOURCE as a module nobody can import, so everything in it is pickled by value."""
    ns: Dict[str, Any] = {"__name__": module_name}
    exec(compile(textwrap.dedent(DYN_SOURCE), f"<{module_name}>", "exec"), ns)
    return ns


def build_corpus() -> Dict[str, Any]:
    ns = dyn_namespace("ffp_selection_dyn")
    main_ns = dyn_namespace("__main__")  # __main__ functions/classes of another process
    dyn_module = types.ModuleType("ffp_selection_dyn_module")
    exec("def triple(x):\n    return 3 * x\n", dyn_module.__dict__)
    point = ns["Point"](3, 4)
    return {
        "plain": ns["plain"], "lambda": ns["square"], "closure": ns["make_counter"](5),
        "recursive": ns["fact"], "modules": ns["uses_modules"], "sets": ns["uses_sets"],
        "generator": ns["gen"], "coroutine": ns["coro"], "class": ns["Point"],
        "instance": point, "bound_method": point.norm2, "enum": ns["Color"],
        "enum_member": ns["Color"].GREEN, "typevar": ns["T"], "module": dyn_module,
        "main_function": main_ns["plain"], "main_class": main_ns["Point"],
        "partial": functools.partial(ns["plain"], 4),
        "views": (lambda d: (d.keys(), d.values(), d.items()))({"a": 1}),
    }


# What each corpus entry must still do after loading; run in-process and in a fresh process.
CHECKS = {
    "plain": "f = o; assert f(1) == 5 and f.__doc__ == 'docstring' and f.__defaults__ == (2,)",
    "lambda": "assert o(7) == 49",
    "closure": "assert o() == 6 and o() == 7",
    "recursive": "assert o(5) == 120",
    "modules": "assert o(1.5) == 1 + len('xml.etree.ElementTree')",
    "sets": "assert o(2) and not o(5)",
    "generator": "assert list(o(3)) == [0, 1, 2]",
    "coroutine": "import asyncio; assert asyncio.run(o()) == 10",
    "class": "p = o(1, 2); assert p.norm2() == 5 and o.scale() == 10 and p.swapped.x == 2",
    "instance": "assert o.norm2() == 25 and type(o).origin().x == 0",
    "bound_method": "assert o() == 25",
    "enum": "assert o.RED.value == 1 and o(2) is o.GREEN",
    "enum_member": "assert o.value == 2 and o is type(o).GREEN",
    "typevar": "assert o.__name__ == 'T' and o.__bound__ is int",
    "module": "assert o.triple(3) == 9 and o.__name__ == 'ffp_selection_dyn_module'",
    "main_function": "assert o(2) == 7",
    "main_class": "assert o(1, 1).norm2() == 2",
    "partial": "assert o() == 11",
    "views": "assert list(o[0]) == ['a'] and list(o[1]) == [1] and list(o[2]) == [('a', 1)]",
}

STRING_OPS = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE",
                        "SHORT_BINUNICODE", "BINUNICODE8"})
FORBIDDEN = frozenset({"fastfnpickle._core", "fastfnpickle._core_py", "fastfnpickle._load",
                       "fastfnpickle._load_py"})


def globals_from_opcodes(data: bytes) -> List[Tuple[str, str]]:
    """(module, name) of every GLOBAL/INST/STACK_GLOBAL, in order, read with genops.

    STACK_GLOBAL takes its two strings from the stack; they may come from the memo, so strings
    are tracked through MEMOIZE/PUT and GET.
    """
    found: List[Tuple[str, str]] = []
    pushed: List[Any] = []  # the last values pushed; None for anything but a string
    memo: Dict[int, Any] = {}
    for op, arg, _pos in pickletools.genops(data):
        name = op.name
        if name in ("GLOBAL", "INST"):
            module, qualname = arg.split(" ", 1)
            found.append((module, qualname))
            pushed.append(None)
        elif name == "STACK_GLOBAL":
            module, qualname = pushed[-2], pushed[-1]
            assert isinstance(module, str) and isinstance(qualname, str), (module, qualname)
            found.append((module, qualname))
            del pushed[-2:]
            pushed.append(None)
        elif name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = pushed[-1] if pushed else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            pushed.append(memo.get(int(arg)))
        elif name in STRING_OPS:
            pushed.append(arg)
        elif name not in ("FRAME", "PROTO"):
            pushed.append(None)
    return found


class RecordingUnpickler(pickle.Unpickler):
    """Loads normally and records every (module, name) the pickle asks for."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.requested: List[Tuple[str, str]] = []

    def find_class(self, module: str, name: str) -> Any:
        self.requested.append((module, name))
        return super().find_class(module, name)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickles_name_only_rebuild(impl: Any, protocol: int) -> None:
    corpus = build_corpus()
    assert set(corpus) == set(CHECKS)
    blobs = {}
    for key, obj in corpus.items():
        data = impl.dumps(obj, protocol=protocol)
        names = globals_from_opcodes(data)
        unpickler = RecordingUnpickler(data)
        loaded = unpickler.load()
        # The opcode walk and the unpickler agree, so the walk missed nothing.
        assert names == unpickler.requested, key
        ours = {module for module, _ in names if module.split(".")[0] == "fastfnpickle"}
        assert not ours & FORBIDDEN, (key, sorted(ours & FORBIDDEN))
        assert ours <= {"fastfnpickle._rebuild"}, (key, sorted(ours))
        # Everything in the corpus is pickled by value, through the stable reconstructors.
        assert any(m == "fastfnpickle._rebuild" for m, _ in names), (key, names)
        exec(CHECKS[key], {"o": loaded})
        blobs[key] = data

    # A fresh interpreter with the default implementation loads every pickle.
    check = "\n".join(
        f"o = pickle.loads(obj[{key!r}])\n{CHECKS[key]}" for key in blobs) + "\nprint('ok')"
    assert load_in_subprocess(pickle.dumps(blobs), check).strip() == "ok"

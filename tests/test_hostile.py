"""Hostile input to the pickling hot path: no crash, in either implementation.

Every case ends in one of two ways: a Python exception of the expected type whose message (or
the notes fastfnpickle adds) names the problem, or a pickle that loads and works in a fresh
interpreter. A segfault or abort must show as a failing test naming the case, not as a dead test
runner, so each implementation's cases run batched in child interpreters:

- a *dump* child (this file run as a script, so the objects the cases build live in
  ``__main__``) builds and pickles every case and reports each outcome as a JSON line;
- a *load* child (a bare interpreter, none of this file's names importable) loads every pickle
  and runs the case's check on it.

Each child announces a case before running it; when a child dies, the case it announced is
reported as crashed and a new child carries on with the cases after it.

Reproduce one case by hand: ``python tests/test_hostile.py dump cython <case>`` (``python`` for
the pure twin, with ``FASTFNPICKLE_NO_EXTENSIONS=1`` set).
"""

import base64
import builtins
import collections.abc
import io
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import threading
import traceback
import types
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import pytest
from conftest import PYTHON_IMPL, Impl, _compiled_core

HERE = os.path.abspath(__file__)
CHILD_TIMEOUT = 120  # seconds for one child; a hung case is reported like a crashed one

# --------------------------------------------------------------------------------------------
# The case table

Expect = Tuple[Tuple[str, ...], str]  # acceptable exception class names, regex on message+notes


class Case(NamedTuple):
    """What a case builds and which outcomes count as correct.

    - pickling raised: ``raises`` must accept it;
    - pickled and loading raised: ``load_raises`` must accept it (loading is tried twice, so a
      half-built class left behind by the first attempt cannot be handed out by the second);
    - pickled and loaded: ``check`` (assert statements over ``obj`` and ``expected``) must pass,
      in this interpreter and in a fresh one.
    """

    build: Callable[[], Any]
    check: Optional[str]
    raises: Optional[Expect]
    load_raises: Optional[Expect]


CASES: Dict[str, Case] = {}


class Built(NamedTuple):
    """A case's object and plain data (stdlib-picklable) its check compares against."""

    obj: Any
    expected: Any = None


class Prepickled(NamedTuple):
    """A case that made its pickle itself (to exercise a pickler after a failure)."""

    data: bytes
    expected: Any = None


class Unsupported(Exception):
    """This Python lacks what the case needs."""


def _expect(spec: Union[None, Tuple[Union[str, Tuple[str, ...]], str]]) -> Optional[Expect]:
    if spec is None:
        return None
    names, pattern = spec
    return ((names,) if isinstance(names, str) else tuple(names), pattern)


def case(check: Optional[str] = None, *, raises: Any = None, load_raises: Any = None
         ) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Register ``case_<name>`` as the case ``<name>``."""
    def register(build: Callable[[], Any]) -> Callable[[], Any]:
        name = build.__name__[len("case_"):]
        assert name not in CASES, name
        CASES[name] = Case(build, None if check is None else textwrap.dedent(check).strip(),
                           _expect(raises), _expect(load_raises))
        return build
    return register


# Helpers every check can use (run in the load child and, for the in-process round trip, in the
# dump child).
CHECK_HELPERS = '''
import pickle, sys, types

def raises(fn, name, pattern=""):
    """Assert that fn() raises an exception with class ``name`` in its MRO."""
    import re
    try:
        fn()
    except BaseException as exc:
        names = [c.__name__ for c in type(exc).__mro__]
        assert name in names, f"expected {name}, got {names[0]}: {exc}"
        assert re.search(pattern, str(exc)), f"{exc!r} does not match {pattern!r}"
        return
    raise AssertionError(f"expected {name}, nothing raised")

def call_outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except Exception as exc:
        return ("raised", type(exc).__name__)
'''


def _check_namespace(obj: Any, expected: Any) -> Dict[str, Any]:
    ns: Dict[str, Any] = {"__name__": "__check__"}
    exec(CHECK_HELPERS, ns)
    ns["obj"] = obj
    ns["expected"] = expected
    return ns


def call_outcome(fn: Callable[..., Any], *args: Any) -> Tuple[str, Any]:
    """What calling ``fn`` gives, as plain data: ("ok", value) or ("raised", class name)."""
    try:
        return ("ok", fn(*args))
    except Exception as exc:
        return ("raised", type(exc).__name__)


# Small builders shared by the cases.

def _closure_over(value: Any) -> Callable[[], Any]:
    def inner() -> Any:
        return value
    return inner


def _function(source: str, name: str, ns: Optional[Dict[str, Any]] = None) -> Any:
    """Define ``name`` by executing ``source`` in a fresh globals dict (or ``ns``)."""
    g: Dict[str, Any] = {"__builtins__": builtins} if ns is None else ns
    exec(textwrap.dedent(source), g)
    return g[name]


def _global_reader(value: Any) -> Callable[[], Any]:
    return _function("def reader():\n    return hostile\n", "reader",
                     {"__builtins__": builtins, "hostile": value})


def _class_holding(value: Any) -> type:
    return type("Holder", (), {"attr": value})


def _code_reading(name: str) -> types.CodeType:
    return _function(f"def f():\n    return {name}\n", "f").__code__


def _free_var_code() -> types.CodeType:
    x = 0
    return (lambda: x * 2).__code__


def _nested_lists(depth: int) -> list:
    x: list = []
    for _ in range(depth):
        x = [x]
    return x


# ---- __reduce__ / __reduce_ex__ that raise or return garbage

class _ReduceRaises:
    def __reduce__(self) -> Any:
        raise ValueError("reduce boom")


class _ReduceExRaises:
    def __reduce_ex__(self, protocol: int) -> Any:
        raise TypeError("reduce_ex boom")


class _Fatal(BaseException):
    """Not an Exception: nothing on the way up may catch and replace it."""


class _ReduceRaisesFatal:
    def __reduce__(self) -> Any:
        raise _Fatal("fatal reduce boom")


@case(raises=("ValueError", "reduce boom"))
def case_reduce_raises() -> Any:
    return _ReduceRaises()


@case(raises=("ValueError", "reduce boom"))
def case_reduce_raises_in_closure() -> Any:
    return _closure_over(_ReduceRaises())


@case(raises=("ValueError", "reduce boom"))
def case_reduce_raises_as_global() -> Any:
    return _global_reader(_ReduceRaises())


@case(raises=("ValueError", "reduce boom"))
def case_reduce_raises_as_class_attribute() -> Any:
    return _class_holding(_ReduceRaises())


@case(raises=("TypeError", "reduce_ex boom"))
def case_reduce_ex_raises() -> Any:
    return _ReduceExRaises()


@case(raises=("TypeError", "reduce_ex boom"))
def case_reduce_ex_raises_in_closure() -> Any:
    return _closure_over(_ReduceExRaises())


@case(raises=("_Fatal", "fatal reduce boom"))
def case_reduce_raises_base_exception() -> Any:
    return [_closure_over(_ReduceRaisesFatal())]


@case(raises=("PicklingError", "must return (a )?string or tuple"))
def case_reduce_returns_int() -> Any:
    class ReturnsInt:
        def __reduce__(self) -> Any:
            return 42
    return _closure_over(ReturnsInt())


@case(raises=("PicklingError", "second item .*must be a tuple"))
def case_reduce_returns_args_not_tuple() -> Any:
    class BadArgs:
        def __reduce__(self) -> Any:
            return (print, "not a tuple")
    return BadArgs()


@case(raises=("PicklingError", "first item .*must be callable"))
def case_reduce_returns_uncallable() -> Any:
    class Uncallable:
        def __reduce__(self) -> Any:
            return (42, ())
    return Uncallable()


@case(raises=("PicklingError", "2 through 6"))
def case_reduce_returns_seven_items() -> Any:
    class Seven:
        def __reduce__(self) -> Any:
            return (list, (), None, None, None, None, None)
    return Seven()


@case(raises=("RecursionError", "recursion"))
def case_reduce_endless_state() -> Any:
    class Endless:
        def __reduce__(self) -> Any:
            return (Endless, (), Endless())
    return Endless()


# ---- __getattr__ that raises or recurses

class _GetattrRaises:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"getattr boom: {name}")


class _GetattrRecurses:
    def __getattr__(self, name: str) -> Any:
        return getattr(self, "again_" + name)


# Before 3.11 the stdlib itself looks __getstate__ up on the instance, which reaches
# __getattr__; from 3.11 on such instances pickle fine, and so must everything holding one
# (fastfnpickle's own probing of attributes must not reach __getattr__ and fail instead).
_OLD_GETSTATE = sys.version_info < (3, 11)
_GETATTR_RAISES = ("RuntimeError", "getattr boom: __getstate__") if _OLD_GETSTATE else None
_GETATTR_RECURSES = ("RecursionError", "recursion") if _OLD_GETSTATE else None


@case("assert type(obj).__name__ == '_GetattrRaises'", raises=_GETATTR_RAISES)
def case_getattr_raises() -> Any:
    return _GetattrRaises()


@case("assert type(obj.attr).__name__ == '_GetattrRaises'", raises=_GETATTR_RAISES)
def case_getattr_raises_as_class_attribute() -> Any:
    return _class_holding(_GetattrRaises())


@case("assert type(obj()).__name__ == '_GetattrRaises'", raises=_GETATTR_RAISES)
def case_getattr_raises_in_closure() -> Any:
    return _closure_over(_GetattrRaises())


@case("assert type(obj()).__name__ == '_GetattrRaises'", raises=_GETATTR_RAISES)
def case_getattr_raises_as_global() -> Any:
    return _global_reader(_GetattrRaises())


@case("assert type(obj).__name__ == '_GetattrRecurses'", raises=_GETATTR_RECURSES)
def case_getattr_recurses() -> Any:
    return _GetattrRecurses()


@case("assert type(obj.attr).__name__ == '_GetattrRecurses'", raises=_GETATTR_RECURSES)
def case_getattr_recurses_as_class_attribute() -> Any:
    return _class_holding(_GetattrRecurses())


@case("assert type(obj()).__name__ == '_GetattrRecurses'", raises=_GETATTR_RECURSES)
def case_getattr_recurses_in_closure() -> Any:
    return _closure_over(_GetattrRecurses())


@case("assert type(obj()).__name__ == '_GetattrRecurses'", raises=_GETATTR_RECURSES)
def case_getattr_recurses_as_global() -> Any:
    return _global_reader(_GetattrRecurses())


@case("""
    assert obj.x == 1 and obj.__name__ == "WithMetaGetattr"
    raises(lambda: obj.missing, "RuntimeError", "meta getattr boom")
""")
def case_metaclass_getattr_raises() -> Any:
    class Meta(type):
        def __getattr__(cls, name: str) -> Any:
            raise RuntimeError(f"meta getattr boom: {name}")

    class WithMetaGetattr(metaclass=Meta):
        x = 1
    return WithMetaGetattr


@case("assert type(obj).__name__ == 'Meta'", raises=("RuntimeError", "meta getattribute boom"))
def case_metaclass_getattribute_raises() -> Any:
    class Meta(type):
        def __getattribute__(cls, name: str) -> Any:
            raise RuntimeError(f"meta getattribute boom: {name}")

    class Sealed(metaclass=Meta):
        x = 1
    return Sealed


class _ClaimsToBeAType:
    """``isinstance(x, type)`` is True through ``__class__``; ``type(x)`` is not a type."""

    __class__ = property(lambda self: type)  # type: ignore[assignment]

    def __reduce__(self) -> Any:
        return (_ClaimsToBeAType, ())


class _ClaimsToBeAModule:
    __class__ = property(lambda self: types.ModuleType)  # type: ignore[assignment]

    def __reduce__(self) -> Any:
        return (_ClaimsToBeAModule, ())


# The stdlib pickles these through their __reduce__; dispatch must go by the real type.
@case("assert type(obj).__name__ == '_ClaimsToBeAType'")
def case_instance_claiming_to_be_a_class() -> Any:
    return _ClaimsToBeAType()


@case("assert type(obj).__name__ == '_ClaimsToBeAModule'")
def case_instance_claiming_to_be_a_module() -> Any:
    return _ClaimsToBeAModule()


@case("""
    inner, f = obj
    assert inner() == 4 and f() == 1
""")
def case_reduce_reenters_dumps() -> Any:
    import fastfnpickle

    class Reenter:
        def __reduce__(self) -> Any:
            k = 4
            # A dumps() inside a dumps(): the per-thread pickler is busy.
            return (pickle.loads, (fastfnpickle.dumps(lambda: k),))
    return [Reenter(), lambda: 1]


# ---- functions: closures, free variables, FunctionType with odd arguments

@case("""
    assert obj.co_freevars == ("x",)
    assert types.FunctionType(obj, {}, None, None, (types.CellType(5),))() == 10
""")
def case_code_with_free_vars_alone() -> Any:
    return _free_var_code()


@case("assert obj() == 42 and obj.__name__ == 'renamed'")
def case_function_from_free_var_code() -> Any:
    return types.FunctionType(_free_var_code(), {"__builtins__": builtins}, "renamed", None,
                              (types.CellType(21),))


@case("""
    raises(obj, "NameError")
    raises(lambda: obj.__closure__[0].cell_contents, "ValueError")
""")
def case_function_with_empty_cell() -> Any:
    return types.FunctionType(_free_var_code(), {"__builtins__": builtins}, "empty", None,
                              (types.CellType(),))


@case("assert obj() == 7 and obj.__closure__ is None and obj.__name__ == 'plain'")
def case_closure_none() -> Any:
    return types.FunctionType((lambda: 7).__code__, {"__builtins__": builtins}, "plain", None,
                              None)


@case("assert obj.__defaults__ == expected[0] and call_outcome(obj, 5) == expected[1]")
def case_argdefs_empty_tuple() -> Any:
    f = types.FunctionType((lambda a=1: a).__code__, {"__builtins__": builtins}, "f", ())
    return Built(f, (f.__defaults__, call_outcome(f, 5)))


# Not called: more defaults than parameters makes CPython itself index out of bounds.
@case("assert obj.__defaults__ == (1, 2, 3) and obj.__code__.co_argcount == 1")
def case_argdefs_longer_than_parameters() -> Any:
    return types.FunctionType((lambda a: a).__code__, {"__builtins__": builtins}, "f", (1, 2, 3))


@case("assert obj.__defaults__ == (None,) and obj() == 5")
def case_argdefs_for_function_without_parameters() -> Any:
    return types.FunctionType((lambda: 5).__code__, {"__builtins__": builtins}, "f", (None,))


@case(raises=("TypeError", r"_thread\.lock"))
def case_argdefs_unpicklable() -> Any:
    return types.FunctionType((lambda a: a).__code__, {"__builtins__": builtins}, "f",
                              (threading.Lock(),))


@case("assert obj.__defaults__[0] is obj and obj() is obj")
def case_defaults_contain_the_function() -> Any:
    def f(a: Any = None) -> Any:
        return a
    f.__defaults__ = (f,)
    return f


@case("""
    assert obj() is obj and obj.__kwdefaults__[1] == 2
    assert obj.me is obj and obj.__dict__[3] == 4
""")
def case_kwdefaults_and_dict_contain_the_function() -> Any:
    def f(*, k: Any = None) -> Any:
        return k
    f.__kwdefaults__ = {"k": f, 1: 2}
    f.__dict__ = {"me": f, 3: 4}
    return f


@case("assert obj.__doc__ == 5 and obj() == 1")
def case_doc_not_a_string() -> Any:
    f = _function("def f():\n    'text'\n    return 1\n", "f")
    f.__doc__ = 5
    return f


@case("cell = obj.__closure__[0]\nassert obj()[0] is cell and cell.cell_contents[0] is cell")
def case_cell_containing_itself_via_list() -> Any:
    def outer() -> Callable[[], list]:
        box: list = []

        def f() -> list:
            return box
        return f
    f = outer()
    f.__closure__[0].cell_contents.append(f.__closure__[0])
    return f


@case("assert obj.cell_contents is obj")
def case_standalone_cell_containing_itself() -> Any:
    cell = types.CellType()
    cell.cell_contents = cell
    return cell


@case("assert obj(5) == 120 and obj.__closure__[0].cell_contents is obj")
def case_closure_holding_the_function() -> Any:
    def outer() -> Callable[[int], int]:
        def fact(n: int) -> int:
            return 1 if n <= 1 else n * fact(n - 1)
        return fact
    return outer()


@case("""
    g1, p1, c1, c2, g2, p2 = obj
    for get, put, cell in ((g1, p1, c1), (g2, p2, c2)):
        assert get.__closure__[0] is put.__closure__[0] is cell
        put(9)
        assert get() == 9 and cell.cell_contents == 9
""")
def case_cells_shared_between_functions_and_alone() -> Any:
    def pair() -> Tuple[Callable[[], Any], Callable[[Any], None]]:
        v = 0

        def get() -> Any:
            return v

        def put(new: Any) -> None:
            nonlocal v
            v = new
        return get, put
    g1, p1 = pair()
    g2, p2 = pair()
    # The first cell is pickled after its functions, the second before them.
    return (g1, p1, g1.__closure__[0], g2.__closure__[0], g2, p2)


@case("assert len(obj.__closure__) == 300 and obj() == expected")
def case_huge_closure() -> Any:
    names = [f"v{i}" for i in range(300)]
    src = ("def outer():\n" + "".join(f"    {v} = {i}\n" for i, v in enumerate(names))
           + "    def inner():\n        return [" + ", ".join(names) + "]\n    return inner\n")
    return Built(_function(src, "outer")(), list(range(300)))


@case("assert obj() == expected")
def case_huge_globals() -> Any:
    n = 1000
    ns: Dict[str, Any] = {f"g{i}": i for i in range(n)}
    ns["__builtins__"] = builtins
    src = "def reader():\n    return [" + ", ".join(f"g{i}" for i in range(n)) + "]\n"
    return Built(_function(src, "reader", ns), list(range(n)))


@case("assert obj() == 3")
def case_globals_with_non_str_keys() -> Any:
    return types.FunctionType(_code_reading("x"), {1: 2, "x": 3, "__builtins__": builtins})


@case("assert obj() == 3")
def case_globals_without_builtins_or_name() -> Any:
    return types.FunctionType(_code_reading("x"), {"x": 3, (1, 2): "tuple key"})


class _KeyLikeX:
    """A globals key that collides with "x" and whose comparison raises."""

    def __hash__(self) -> int:
        return hash("x")

    def __eq__(self, other: Any) -> bool:
        raise RuntimeError("globals key eq boom")


# Calling the original raises (its lookup of x compares keys); a pickle must do the same.
@case('raises(obj, "RuntimeError", "globals key eq boom")',
      raises=("RuntimeError", "globals key eq boom"))
def case_globals_key_comparison_raises() -> Any:
    return types.FunctionType(_code_reading("x"), {_KeyLikeX(): 3, "__builtins__": builtins})


class _HostileGlobals(dict):
    def __getitem__(self, key: Any) -> Any:
        raise RuntimeError("globals getitem boom")

    def __contains__(self, key: Any) -> bool:
        raise RuntimeError("globals contains boom")

    def get(self, key: Any, default: Any = None) -> Any:
        raise RuntimeError("globals get boom")


@case("assert obj() == 3", raises=("RuntimeError", "globals .* boom"))
def case_globals_dict_subclass_raising() -> Any:
    return types.FunctionType(_code_reading("x"),
                              _HostileGlobals(x=3, __builtins__=builtins))


# ---- __module__, __name__, __qualname__ with odd values

class _Unequal:
    """Compares and hashes by raising."""

    def __eq__(self, other: Any) -> bool:
        raise RuntimeError("unequal eq boom")

    def __hash__(self) -> int:
        raise RuntimeError("unequal hash boom")


class _Str(str):
    pass


def _plain_function() -> Callable[[], int]:
    return _function("def f():\n    return 1\n", "f", {"__builtins__": builtins,
                                                       "__name__": "hostile_globals"})


def _plain_class() -> type:
    class Plain:
        x = 1

        def method(self) -> int:
            return 2
    return Plain


@case("assert obj.__module__ == 5 and obj() == 1")
def case_function_module_int() -> Any:
    f = _plain_function()
    f.__module__ = 5
    return f


@case("assert obj.__module__ is None and obj() == 1")
def case_function_module_none() -> Any:
    f = _plain_function()
    f.__module__ = None
    return f


@case("assert type(obj.__module__).__name__ == '_Unequal' and obj() == 1")
def case_function_module_object_that_raises() -> Any:
    f = _plain_function()
    f.__module__ = _Unequal()
    return f


@case("assert obj.__module__ == '__main__' and type(obj.__module__).__name__ == '_Str'")
def case_function_module_str_subclass() -> Any:
    f = _plain_function()
    f.__module__ = _Str("__main__")
    return f


@case("assert obj.__module__ == 'no_such_module_ffp' and obj() == 1")
def case_function_module_missing() -> Any:
    f = _plain_function()
    f.__module__ = "no_such_module_ffp"
    return f


class _HostileModule:
    """Stands in sys.modules; every attribute lookup raises."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"module getattr boom: {name}")


@case("assert obj.__module__ == 'ffp_hostile_mod' and obj() == 1",
      raises=("RuntimeError", "module getattr boom"))
def case_function_module_in_sys_modules_raises() -> Any:
    sys.modules["ffp_hostile_mod"] = _HostileModule()  # type: ignore[assignment]
    f = _plain_function()
    f.__module__ = "ffp_hostile_mod"
    f.__qualname__ = "f"
    return f


@case("""
    import os
    assert obj is not os.path.join and obj.__qualname__ == "path.join" and obj() == 1
""")
def case_function_qualname_names_another_object() -> Any:
    f = _plain_function()
    f.__module__ = "os"
    f.__qualname__ = "path.join"
    return f


_ODD_NAMES = ["", "\u03bb", "a\x00b", "\ud800", "x" * 10000, "1 + 1", "<lambda>", "a..b", ".",
              "<locals>", "x.<locals>.y"]


@case("""
    assert [f.__name__ for f in obj] == expected
    assert [f.__qualname__ for f in obj] == [n[::-1] for n in expected]
    assert [f() for f in obj] == [1] * len(expected)
""")
def case_function_odd_names() -> Any:
    funcs = []
    for name in _ODD_NAMES:
        f = _plain_function()
        f.__name__ = name
        f.__qualname__ = name[::-1]
        funcs.append(f)
    return Built(funcs, _ODD_NAMES)


# Class names must encode to UTF-8 without NUL; qualnames may be any str.
@case("""
    assert [c.__name__ for c in obj] == expected[0]
    assert [c.__qualname__ for c in obj] == expected[1]
    assert [c().method() for c in obj] == [2] * len(obj)
""")
def case_class_odd_names() -> Any:
    names = ["", "\u03bb", "x" * 10000, "1 + 1", "<lambda>"]
    qualnames = ["a..b", ".", "\ud800", "x.<locals>.y", ""]
    classes = []
    for name, qualname in zip(names, qualnames):
        cls = _plain_class()
        cls.__name__ = name
        cls.__qualname__ = qualname
        classes.append(cls)
    return Built(classes, (names, qualnames))


@case("assert obj.__module__ == 5 and obj().method() == 2")
def case_class_module_int() -> Any:
    cls = _plain_class()
    cls.__module__ = 5  # type: ignore[assignment]
    return cls


@case("assert obj.__module__ is None and obj().method() == 2")
def case_class_module_none() -> Any:
    cls = _plain_class()
    cls.__module__ = None  # type: ignore[assignment]
    return cls


@case("assert obj.__module__ == ['not', 'hashable'] and obj().method() == 2")
def case_class_module_unhashable() -> Any:
    cls = _plain_class()
    cls.__module__ = ["not", "hashable"]  # type: ignore[assignment]
    return cls


@case("assert type(obj.__module__).__name__ == '_Unequal' and obj().method() == 2")
def case_class_module_object_that_raises() -> Any:
    cls = _plain_class()
    cls.__module__ = _Unequal()  # type: ignore[assignment]
    return cls


@case("""
    import os
    assert obj is not os.path and obj.__qualname__ == "path" and obj().method() == 2
""")
def case_class_qualname_names_another_object() -> Any:
    cls = _plain_class()
    cls.__module__ = "os"
    cls.__qualname__ = "path"
    return cls


@case("assert obj.__type_params__ == (1, 'x') and obj() == 1")
def case_function_type_params_not_typevars() -> Any:
    if sys.version_info < (3, 12):
        raise Unsupported("__type_params__ is new in Python 3.12")
    f = _plain_function()
    f.__type_params__ = (1, "x")  # type: ignore[attr-defined]
    return f


@case("assert obj.__code__.co_filename == expected and obj() == 1")
def case_code_filename_with_surrogate() -> Any:
    f = _plain_function()
    f.__code__ = f.__code__.replace(co_filename="\udcff/odd.py")
    return Built(f, "\udcff/odd.py")


@case("assert obj.__name__ == 5 and obj.x == 1", raises=(("PicklingError", "TypeError"), "name"))
def case_dynamic_module_name_not_a_string() -> Any:
    module = types.ModuleType("ffp_dynamic")
    module.__name__ = 5  # type: ignore[assignment]
    module.x = 1  # type: ignore[attr-defined]
    return module


# ---- code objects with odd flags, alone and inside functions

CO_OPTIMIZED, CO_NEWLOCALS, CO_VARARGS, CO_VARKEYWORDS = 0x1, 0x2, 0x4, 0x8
CO_NESTED, CO_GENERATOR, CO_COROUTINE, CO_ITERABLE_COROUTINE = 0x10, 0x20, 0x80, 0x100
CO_ASYNC_GENERATOR = 0x200
CO_FUTURE_ANNOTATIONS = 0x1000000

_FLAGS_CHECK = """
    code, func = obj
    flags, co_code, outcome = expected
    assert code.co_flags == func.__code__.co_flags == flags
    assert code.co_code == func.__code__.co_code == co_code
    if outcome is not None:
        assert call_outcome(func) == outcome
"""


def _odd_flags(source: str, set_: int = 0, clear: int = 0, call: bool = False) -> Built:
    """A code object with flags changed, alone and in a function; called only when ``call``
    (some flag changes make CPython itself misbehave on a call)."""
    code = _function(source, "f").__code__
    odd = code.replace(co_flags=(code.co_flags | set_) & ~clear)
    func = types.FunctionType(odd, {"__builtins__": builtins}, "odd", None, None)
    return Built((odd, func), (odd.co_flags, odd.co_code, call_outcome(func) if call else None))


_PLAIN = "def f():\n    return [1, 2]\n"
_GENERATOR = "def f():\n    yield 1\n"
_COROUTINE = "async def f():\n    return 1\n"


@case(_FLAGS_CHECK)
def case_code_flags_generator_set() -> Any:
    return _odd_flags(_PLAIN, set_=CO_GENERATOR)


@case(_FLAGS_CHECK)
def case_code_flags_generator_cleared() -> Any:
    return _odd_flags(_GENERATOR, clear=CO_GENERATOR)


@case(_FLAGS_CHECK)
def case_code_flags_coroutine_set() -> Any:
    return _odd_flags(_PLAIN, set_=CO_COROUTINE)


@case(_FLAGS_CHECK)
def case_code_flags_coroutine_cleared() -> Any:
    return _odd_flags(_COROUTINE, clear=CO_COROUTINE)


@case(_FLAGS_CHECK)
def case_code_flags_iterable_coroutine_set() -> Any:
    return _odd_flags(_GENERATOR, set_=CO_ITERABLE_COROUTINE)


@case(_FLAGS_CHECK)
def case_code_flags_async_generator_set() -> Any:
    return _odd_flags(_PLAIN, set_=CO_ASYNC_GENERATOR)


@case(_FLAGS_CHECK)
def case_code_flags_all_kinds_at_once() -> Any:
    return _odd_flags(_PLAIN, set_=CO_GENERATOR | CO_COROUTINE | CO_ITERABLE_COROUTINE
                      | CO_ASYNC_GENERATOR)


@case(_FLAGS_CHECK)
def case_code_flags_newlocals_cleared() -> Any:
    return _odd_flags(_PLAIN, clear=CO_NEWLOCALS)


@case(_FLAGS_CHECK)
def case_code_flags_optimized_cleared() -> Any:
    return _odd_flags(_PLAIN, clear=CO_OPTIMIZED | CO_NEWLOCALS)


_TWO_LOCALS = "def f():\n    a = b = 1\n    return [a, b]\n"


@case(_FLAGS_CHECK)
def case_code_flags_varargs_without_parameter() -> Any:
    # Its two locals become *a and **b.
    return _odd_flags(_TWO_LOCALS, set_=CO_VARARGS | CO_VARKEYWORDS)


@case(_FLAGS_CHECK)
def case_code_flags_nested_and_future_set() -> Any:
    return _odd_flags(_PLAIN, set_=CO_NESTED | CO_FUTURE_ANNOTATIONS, call=True)


@case(_FLAGS_CHECK)
def case_code_flags_unknown_high_bits() -> Any:
    try:
        return _odd_flags(_PLAIN, set_=0x40000000, call=True)
    except ValueError as exc:
        raise Unsupported(f"this Python refuses unknown code flags: {exc}") from None


# Bytecode naming more globals than co_names holds: the scanners must not read past the tuple.
_BAD_NAMES = (("IndexError", "ValueError", "PicklingError"), "range|name")


@case("assert obj.co_names == () and obj.co_code == expected", raises=_BAD_NAMES)
def case_code_names_out_of_range() -> Any:
    code = _code_reading("some_global").replace(co_names=())
    return Built(code, code.co_code)


@case("assert obj.__code__.co_names == () and obj.__code__.co_code == expected",
      raises=_BAD_NAMES)
def case_function_code_names_out_of_range() -> Any:
    code = _code_reading("some_global").replace(co_names=())
    return Built(types.FunctionType(code, {"__builtins__": builtins}), code.co_code)


@case("assert obj.co_names == ('os',) and obj.co_code == expected", raises=_BAD_NAMES)
def case_code_attribute_names_out_of_range() -> Any:
    # os.path.join: the attribute chain indexes co_names past its end.
    code = _code_reading("os.path.join")
    return Built(code.replace(co_names=code.co_names[:1]), code.co_code)


class _Opaque:
    pass


@case(raises=(("ValueError", "PicklingError"), "unmarshallable"))
def case_code_const_unmarshallable() -> Any:
    code = _code_reading("1")
    return code.replace(co_consts=code.co_consts + (_Opaque(),))


@case(raises=(("ValueError", "PicklingError"), "unmarshallable"))
def case_function_code_const_unmarshallable() -> Any:
    code = _code_reading("1")
    return types.FunctionType(code.replace(co_consts=code.co_consts + (_Opaque(),)),
                              {"__builtins__": builtins})


# ---- classes with broken metaclasses

@case(load_raises=("RuntimeError", "refuses a second class"))
def case_metaclass_new_raises_when_called_again() -> Any:
    class OnceMeta(type):
        made = 0

        def __new__(mcls, name: str, bases: tuple, ns: dict, **kw: Any) -> Any:
            if OnceMeta.made:
                raise RuntimeError("metaclass refuses a second class")
            OnceMeta.made += 1
            return super().__new__(mcls, name, bases, ns)

    class Once(metaclass=OnceMeta):
        x = 1
    return Once


# TypeError is the one exception the class rebuild answers with a fallback; either outcome is
# acceptable as long as it is not a crash.
@case("assert type(obj).__name__ == 'OnceMeta' and obj.x == 1",
      load_raises=("TypeError", "refuses a second class"))
def case_metaclass_new_raises_type_error_when_called_again() -> Any:
    class OnceMeta(type):
        made = 0

        def __new__(mcls, name: str, bases: tuple, ns: dict, **kw: Any) -> Any:
            if OnceMeta.made:
                raise TypeError("metaclass refuses a second class")
            OnceMeta.made += 1
            return super().__new__(mcls, name, bases, ns)

    class Once(metaclass=OnceMeta):
        x = 1
    return Once


@case(load_raises=("RuntimeError", "init refuses a second class"))
def case_metaclass_init_raises_when_called_again() -> Any:
    class OnceInitMeta(type):
        made = 0

        def __init__(cls, name: str, bases: tuple, ns: dict, **kw: Any) -> None:
            if OnceInitMeta.made:
                raise RuntimeError("metaclass init refuses a second class")
            OnceInitMeta.made += 1
            super().__init__(name, bases, ns)

    class Once(metaclass=OnceInitMeta):
        x = 1
    return Once


@case("""
    cls, inst = obj
    assert type(inst) is cls and inst.v == 1
    raises(cls, "RuntimeError", "no instances")
""")
def case_metaclass_call_raises() -> Any:
    class NoCallMeta(type):
        def __call__(cls, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("no instances through the metaclass")

    class Guarded(metaclass=NoCallMeta):
        pass
    inst = object.__new__(Guarded)
    inst.v = 1
    return (Guarded, inst)


class _TouchyMeta(type):
    def __eq__(cls, other: Any) -> bool:
        raise RuntimeError("metaclass eq boom")

    def __hash__(cls) -> int:
        raise RuntimeError("metaclass hash boom")


@case("assert obj.x == 1 and type(obj).__name__ == '_TouchyMeta'")
def case_metaclass_eq_hash_raise() -> Any:
    class Touchy(metaclass=_TouchyMeta):
        x = 1
    return Touchy


@case("assert obj.x == 1 and obj.__bases__[0].__name__ == 'Touchy' and obj().y == 2")
def case_metaclass_eq_hash_raise_subclass() -> Any:
    class Touchy(metaclass=_TouchyMeta):
        x = 1

    class Sub(Touchy):
        def __init__(self) -> None:
            self.y = 2
    return Sub


# The stdlib itself hashes an instance's class to look up its reducer.
@case("assert type(obj).x == 1", raises=("RuntimeError", "metaclass hash boom"))
def case_metaclass_eq_hash_raise_instance() -> Any:
    class Touchy(metaclass=_TouchyMeta):
        x = 1
    return Touchy()


class _UnhashableMeta(type):
    def __eq__(cls, other: Any) -> bool:
        return cls is other

    __hash__ = None  # type: ignore[assignment]


@case("""
    cls, sub = obj
    assert cls.x == 1 and sub.__bases__ == (cls,) and sub().method() == 2
""")
def case_metaclass_unhashable() -> Any:
    class Unhashable(metaclass=_UnhashableMeta):
        x = 1

    class Sub(Unhashable):
        def method(self) -> int:
            return 2
    return (Unhashable, Sub)


@case("assert type(obj).x == 1", raises=("TypeError", "unhashable"))
def case_metaclass_unhashable_instance() -> Any:
    class Unhashable(metaclass=_UnhashableMeta):
        x = 1
    return Unhashable()


@case("""
    assert obj.a == 1 and obj().method() == 2 and type(obj).__name__ == "PrepareMeta"
    # 3.13 adds __firstlineno__ and __static_attributes__ after the body.
    assert obj.order.index("a") < obj.order.index("method")
""")
def case_metaclass_prepare_returns_non_dict_mapping() -> Any:
    class RecordingNamespace(collections.abc.MutableMapping):
        def __init__(self) -> None:
            self.data: Dict[str, Any] = {}
            self.order: List[str] = []

        def __getitem__(self, key: str) -> Any:
            return self.data[key]

        def __setitem__(self, key: str, value: Any) -> None:
            self.order.append(key)
            self.data[key] = value

        def __delitem__(self, key: str) -> None:
            del self.data[key]

        def __iter__(self) -> Any:
            return iter(self.data)

        def __len__(self) -> int:
            return len(self.data)

    class PrepareMeta(type):
        @classmethod
        def __prepare__(mcls, name: str, bases: tuple, **kw: Any) -> Any:  # type: ignore[override]
            return RecordingNamespace()

        def __new__(mcls, name: str, bases: tuple, ns: Any, **kw: Any) -> Any:
            cls = super().__new__(mcls, name, bases, dict(ns.data))
            cls.order = tuple(ns.order)
            return cls

    class Prepared(metaclass=PrepareMeta):
        a = 1

        def method(self) -> int:
            return self.a + 1
    return Prepared


@case("assert obj.a == 1 and type(obj).__name__ == 'ArmedPrepareMeta'",
      load_raises=(("TypeError", "RuntimeError"), "mappingproxy|item assignment"))
def case_metaclass_prepare_returns_read_only_mapping_on_load() -> Any:
    class ArmedPrepareMeta(type):
        armed = False

        @classmethod
        def __prepare__(mcls, name: str, bases: tuple, **kw: Any) -> Any:  # type: ignore[override]
            return types.MappingProxyType({}) if mcls.armed else {}

    class Prepared(metaclass=ArmedPrepareMeta):
        a = 1
    ArmedPrepareMeta.armed = True
    return Prepared


# ---- class dicts: unpicklable values, __set_name__, self-reference, slots

@case(raises=("TypeError", r"(?s)_thread\.lock.*\bguard\b"))
def case_class_dict_holds_lock() -> Any:
    class WithLock:
        guard = threading.Lock()
    return WithLock


@case(raises=("TypeError", r"(?s)generator.*\bpending\b"))
def case_class_dict_holds_generator() -> Any:
    class WithGenerator:
        pending = (i for i in range(3))
    return WithGenerator


@case(load_raises=("RuntimeError", "set_name boom for slot"))
def case_set_name_raises_on_load() -> Any:
    class Arming:
        armed = False

        def __set_name__(self, owner: type, name: str) -> None:
            if type(self).armed:
                raise RuntimeError(f"set_name boom for {name}")

    class Owner:
        slot = Arming()
    Arming.armed = True
    return Owner


@case("""
    cls, inst = obj
    assert cls.me is cls and cls.pair[0] is cls and cls.pair[1][0] is cls
    assert type(inst) is cls and inst.kind is cls
""")
def case_class_attribute_is_the_class() -> Any:
    class Selfish:
        pass
    Selfish.me = Selfish  # type: ignore[attr-defined]
    Selfish.pair = (Selfish, [Selfish])  # type: ignore[attr-defined]
    inst = Selfish()
    inst.kind = Selfish  # type: ignore[attr-defined]
    return (Selfish, inst)


@case("assert obj().hello() == 'derived+base'")
def case_class_method_uses_super() -> Any:
    class Base:
        def hello(self) -> str:
            return "base"

    class Derived(Base):
        def hello(self) -> str:
            return "derived+" + super().hello()
    return Derived


@case("""
    inst = obj()
    inst.a = 1
    assert inst.a == 1 and not hasattr(inst, "__dict__") and obj.__slots__ == {"a": "doc of a"}
""")
def case_class_slots_as_dict() -> Any:
    class Slotted:
        __slots__ = {"a": "doc of a"}
    return Slotted


# ---- recursion depth

_TOO_DEEP = ("PicklingError", "too deeply nested")


@case(raises=_TOO_DEEP)
def case_nested_lists_100k() -> Any:
    return _nested_lists(100_000)


@case(raises=_TOO_DEEP)
def case_deep_closure_chain() -> Any:
    f: Callable[[], int] = lambda: 0  # noqa: E731
    # 3.14+ bound the C pickler by the C stack, not the recursion limit: 5,000 levels fit.
    for _ in range(20_000):
        f = (lambda g: (lambda: g() + 1))(f)
    return f


@case(raises=_TOO_DEEP)
def case_deep_class_chain() -> Any:
    cls: type = type("C0", (), {})
    for i in range(1, 20_000):  # deeper than any interpreter's C stack allows (see above)
        cls = type(f"C{i}", (), {"inner": cls})
    return cls


@case("""
    first, second = [pickle.loads(d) for d in obj]
    assert [f(1) for f in first] == [4, 4] and first[0] is first[1]
    assert second(1) == 4
""")
def case_pickler_works_after_recursion_error() -> Any:
    import fastfnpickle

    deep = _nested_lists(100_000)
    k = 3

    def add(y: int) -> int:
        return y + k
    buf = io.BytesIO()
    pickler = fastfnpickle.Pickler(buf)
    for attempt in (lambda: pickler.dump(deep), lambda: fastfnpickle.dumps(deep)):
        try:
            attempt()
        except pickle.PicklingError:
            pass
        else:
            raise AssertionError("100k nested lists pickled without error")
    # As with the stdlib, a pickler's memo outlives a dump (failed or not) until cleared.
    pickler.clear_memo()
    buf.seek(0)
    buf.truncate()
    pickler.dump([add, add])
    return Prepickled(pickle.dumps([buf.getvalue(), fastfnpickle.dumps(add)]))


# ---- __getstate__ returning odd things

def _with_state(state: Callable[[Any], Any], setstate: bool) -> Any:
    class Stateful:
        def __getstate__(self) -> Any:
            return state(self)
    if setstate:
        def __setstate__(self: Any, value: Any) -> None:
            self.s = value
        Stateful.__setstate__ = __setstate__  # type: ignore[attr-defined]
    return Stateful()


@case("assert type(obj).__name__ == 'Stateful' and obj.__dict__ == {}")
def case_getstate_returns_none() -> Any:
    return _with_state(lambda self: None, setstate=False)


@case(load_raises=("UnpicklingError", "state is not a dictionary"))
def case_getstate_returns_int_without_setstate() -> Any:
    return _with_state(lambda self: 42, setstate=False)


@case("assert obj.s is obj")
def case_getstate_returns_self() -> Any:
    return _with_state(lambda self: self, setstate=True)


@case("assert obj.s() == 3")
def case_getstate_returns_lambda() -> Any:
    k = 3
    return _with_state(lambda self: (lambda: k), setstate=True)


@case("assert obj.s == {1, 'a', None, (2, 'b')}")
def case_getstate_returns_unorderable_set() -> Any:
    return _with_state(lambda self: {1, "a", None, (2, "b")}, setstate=True)


@case("assert obj.__dict__ == {1: 2, 'a': 3}")
def case_getstate_returns_dict_with_non_str_keys() -> Any:
    return _with_state(lambda self: {1: 2, "a": 3}, setstate=False)


@case(raises=("RuntimeError", "getstate boom"))
def case_getstate_raises() -> Any:
    def boom(self: Any) -> Any:
        raise RuntimeError("getstate boom")
    return _with_state(boom, setstate=True)


@case(raises=("TypeError", "generator"))
def case_getstate_returns_generator() -> Any:
    return _with_state(lambda self: (i for i in range(3)), setstate=True)


@case("assert obj.s.__name__ == 'Stateful' and isinstance(obj, obj.s)")
def case_getstate_returns_own_class() -> Any:
    return _with_state(lambda self: type(self), setstate=True)


# --------------------------------------------------------------------------------------------
# Children

def _emit(record: Dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def _describe(exc: BaseException) -> Dict[str, Any]:
    try:
        message = str(exc)
    except BaseException as err:  # a hostile exception may not even print
        message = f"<str() raised {type(err).__name__}>"
    notes = getattr(exc, "__notes__", None)
    return {
        "types": [c.__name__ for c in type(exc).__mro__],
        "message": message[:4000],
        "notes": [str(n)[:2000] for n in notes] if isinstance(notes, list) else [],
    }


def _run_check(check: str, obj: Any, expected: Any) -> Optional[str]:
    """None if ``check`` passes on ``obj``, else the formatted failure."""
    try:
        exec(check, _check_namespace(obj, expected))
    except BaseException:
        return traceback.format_exc(limit=-3)
    return None


def _dump_child(impl_name: str, names: Sequence[str]) -> None:
    import fastfnpickle

    if fastfnpickle.IMPLEMENTATION != impl_name:
        raise SystemExit(f"asked for {impl_name}, got {fastfnpickle.IMPLEMENTATION}")
    for name in names:
        _emit({"event": "start", "case": name})
        spec = CASES[name]
        rec: Dict[str, Any] = {"event": "result", "case": name}
        try:
            built = spec.build()
        except Unsupported as exc:
            rec.update(outcome="unsupported", reason=str(exc))
            _emit(rec)
            continue
        except BaseException:
            rec.update(outcome="build_failed", traceback=traceback.format_exc())
            _emit(rec)
            continue
        # Exact type checks only: the built object itself may be hostile to attribute lookups.
        kind = type(built)
        expected = built.expected if kind is Built or kind is Prepickled else None
        if kind is Prepickled:
            data: Optional[bytes] = built.data
        else:
            obj = built.obj if kind is Built else built
            try:
                # The public path: its per-thread pickler is reused from case to case, so a
                # failure that leaves it dirty shows up in the next case.
                data = fastfnpickle.dumps(obj)
            except BaseException as exc:
                data = None
                rec.update(outcome="raised", **_describe(exc))
        if data is not None:
            rec.update(outcome="pickled", data=base64.b64encode(data).decode(),
                       expected=base64.b64encode(pickle.dumps(expected)).decode())
            if spec.load_raises is None and spec.check is not None:
                # In-process round trip (classes come back from the registry here).
                try:
                    rec["inprocess"] = _run_check(spec.check, pickle.loads(data), expected)
                except BaseException as exc:
                    rec["inprocess"] = f"loading in process raised {_describe(exc)}"
        _emit(rec)


LOADER = CHECK_HELPERS + '''
import base64, json, traceback
import fastfnpickle

def emit(record):
    sys.stdout.write(json.dumps(record) + "\\n")
    sys.stdout.flush()

def describe(exc):
    try:
        message = str(exc)
    except BaseException as err:
        message = f"<str() raised {type(err).__name__}>"
    notes = getattr(exc, "__notes__", None)
    return {"types": [c.__name__ for c in type(exc).__mro__], "message": message[:4000],
            "notes": [str(n)[:2000] for n in notes] if isinstance(notes, list) else []}

assert fastfnpickle.IMPLEMENTATION == sys.argv[1], fastfnpickle.IMPLEMENTATION
jobs = pickle.loads(sys.stdin.buffer.read())
for name in sys.argv[2:]:
    data, expected_blob, check, twice = jobs[name]
    emit({"event": "start", "case": name})
    rec = {"event": "result", "case": name}
    attempts = []
    for _ in range(2 if twice else 1):
        try:
            obj = pickle.loads(data)
        except BaseException as exc:
            attempts.append(describe(exc))
        else:
            attempts.append(None)
            break
    rec["attempts"] = attempts
    if attempts[-1] is None and check is not None:
        ns = dict(globals())
        ns.update(obj=obj, expected=pickle.loads(expected_blob), __name__="__check__")
        try:
            exec(check, ns)
            rec["check"] = None
        except BaseException:
            rec["check"] = traceback.format_exc(limit=-3)
    emit(rec)
'''


# --------------------------------------------------------------------------------------------
# Driving the children from the test process

def _child_env(impl: Impl) -> Dict[str, str]:
    env = impl.env()
    env["PYTHONHASHSEED"] = "0"  # the twins' bytes are compared; keep set order out of it
    env["PYTHONFAULTHANDLER"] = "1"  # a crash prints the C-level stack on stderr
    return env


def _run_children(argv_head: List[str], names: List[str], env: Dict[str, str],
                  stdin: bytes = b"") -> Dict[str, Dict[str, Any]]:
    """Run ``argv_head + names`` until every case has a result; a child that dies marks the
    case it was running as crashed and a new child takes the cases after it."""
    results: Dict[str, Dict[str, Any]] = {}
    remaining = list(names)
    while remaining:
        try:
            proc = subprocess.run(argv_head + remaining, input=stdin, capture_output=True,
                                  env=env, timeout=CHILD_TIMEOUT)
            out, err, rc = proc.stdout, proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as exc:
            out, err, rc = exc.stdout or b"", exc.stderr or b"", None
        current = None
        for line in out.decode(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("event") == "start":
                current = rec["case"]
            elif rec.get("event") == "result":
                results[rec["case"]] = rec
                current = None
        if rc == 0 and current is None:
            for name in remaining:
                results.setdefault(name, {"outcome": "missing"})
            break
        tail = err.decode(errors="replace")[-3000:]
        if current is None:
            # Died outside any case (startup): nothing more can run.
            for name in remaining:
                results.setdefault(name, {"outcome": "crashed", "returncode": rc,
                                          "stderr": tail, "outside_case": True})
            break
        results[current] = {"outcome": "crashed", "returncode": rc, "stderr": tail}
        remaining = remaining[remaining.index(current) + 1:]
    return results


_BATCHES: Dict[str, Dict[str, Dict[str, Any]]] = {}


def _batch(impl: Impl) -> Dict[str, Dict[str, Any]]:
    """Every case's outcome under ``impl``: {"dump": record, "load": record or None}."""
    if impl.name in _BATCHES:
        return _BATCHES[impl.name]
    env = _child_env(impl)
    names = list(CASES)
    dumped = _run_children([sys.executable, HERE, "dump", impl.name], names, env)
    jobs = {}
    for name, rec in dumped.items():
        if rec.get("outcome") == "pickled":
            spec = CASES[name]
            jobs[name] = (base64.b64decode(rec["data"]), base64.b64decode(rec["expected"]),
                          spec.check, spec.load_raises is not None)
    loaded = (_run_children([sys.executable, "-c", LOADER, impl.name], list(jobs), env,
                            pickle.dumps(jobs)) if jobs else {})
    batch = {name: {"dump": dumped[name], "load": loaded.get(name)} for name in names}
    _BATCHES[impl.name] = batch
    return batch


def _crash_text(rec: Dict[str, Any], phase: str, name: str, impl_name: str) -> str:
    rc = rec.get("returncode")
    if rc is None:
        how = f"hung for over {CHILD_TIMEOUT}s"
    elif rc < 0:
        how = f"died of {signal.Signals(-rc).name}"
    else:
        how = f"exited with status {rc}"
    where = "outside any case" if rec.get("outside_case") else f"in case {name!r}"
    repro = (f"python tests/test_hostile.py dump {impl_name} {name}" if phase == "pickling"
             else "load its pickle in a fresh interpreter")
    return (f"[{impl_name}] the interpreter {how} while {phase} {where}\n"
            f"reproduce: {repro}\nstderr tail:\n{rec.get('stderr', '')}")


def _matches(expect: Optional[Expect], exc: Dict[str, Any]) -> Optional[str]:
    """None if the exception record is acceptable, else why not."""
    text = f"{exc['types'][0]}: {exc['message']}\nnotes: {exc['notes']}"
    if expect is None:
        return f"raised where it must not:\n{text}"
    names, pattern = expect
    if not any(n in exc["types"] for n in names):
        return f"expected one of {names}, got:\n{text}"
    if not re.search(pattern, exc["message"] + "\n" + "\n".join(exc["notes"]), re.I):
        return f"message does not name the problem (expected /{pattern}/):\n{text}"
    return None


def _verdict(name: str, impl_name: str, batch: Dict[str, Dict[str, Any]]) -> None:
    spec = CASES[name]
    dump, load = batch[name]["dump"], batch[name]["load"]
    outcome = dump.get("outcome")
    if outcome == "crashed":
        pytest.fail(_crash_text(dump, "pickling", name, impl_name))
    if outcome == "unsupported":
        pytest.skip(dump["reason"])
    if outcome == "build_failed":
        pytest.fail(f"the case could not build its object:\n{dump['traceback']}")
    if outcome == "raised":
        problem = _matches(spec.raises, dump)
        assert problem is None, f"[{impl_name}] pickling {name}: {problem}"
        return
    assert outcome == "pickled", f"no result for {name}: {dump}"
    if spec.check is None and spec.load_raises is None:
        pytest.fail(f"[{impl_name}] {name} pickled; expected {spec.raises}")
    assert dump.get("inprocess") is None, (
        f"[{impl_name}] {name}: in-process round trip failed:\n{dump['inprocess']}")
    assert load is not None, f"[{impl_name}] {name}: the loader reported nothing"
    if load.get("outcome") == "crashed":
        pytest.fail(_crash_text(load, "loading", name, impl_name))
    attempts = load["attempts"]
    if attempts[-1] is not None or len(attempts) > 1:
        for exc in attempts:
            if exc is None:
                assert spec.check is not None, (
                    f"[{impl_name}] {name}: loading raised once, then gave an object "
                    f"(a half-built class handed out?): {attempts}")
                continue
            problem = _matches(spec.load_raises, exc)
            assert problem is None, (
                f"[{impl_name}] loading {name} in a fresh interpreter: {problem}")
    if attempts[-1] is None:
        assert load.get("check") is None, (
            f"[{impl_name}] {name}: check failed in a fresh interpreter:\n{load['check']}")


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input(impl: Impl, name: str) -> None:
    """No crash: a Python exception naming the problem, or a pickle that works after loading."""
    _verdict(name, impl.name, _batch(impl))


def _summary(entry: Dict[str, Any]) -> Any:
    dump, load = entry["dump"], entry["load"]
    outcome = dump.get("outcome")
    if outcome == "raised":
        return ("raised", dump["types"][0], dump["message"], dump["notes"])
    if outcome == "pickled":
        loaded = None if load is None else (load.get("outcome"), load.get("attempts"),
                                             load.get("check") is None)
        return ("pickled", dump["data"], loaded)
    return (outcome,)


@pytest.mark.cython
@pytest.mark.parametrize("name", list(CASES))
def test_twins_agree_on_hostile_input(name: str) -> None:
    """Same exception type and message, or the same bytes, from both implementations."""
    core = _compiled_core()
    if core is None:
        pytest.skip("compiled core not built (pure-Python install)")
    python = _summary(_batch(PYTHON_IMPL)[name])
    cython = _summary(_batch(Impl("cython", core))[name])
    assert cython == python, f"{name}: the twins differ\npython: {python}\ncython: {cython}"


if __name__ == "__main__":
    # python tests/test_hostile.py dump <python|cython> <case>...
    if len(sys.argv) < 3 or sys.argv[1] != "dump":
        raise SystemExit(__doc__)
    _dump_child(sys.argv[2], sys.argv[3:] or list(CASES))

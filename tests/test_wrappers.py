"""functools.lru_cache/cache wrappers, functools.singledispatch functions and typing.NewType
defined in ``__main__`` (or a module registered by value) travel by value; importable ones by
name."""

import functools
import pickle
import typing
from typing import Any

import pytest
from _fresh import produce, roundtrip
from conftest import PYTHON_IMPL, Impl, run_python

LRU = """
import functools

@functools.lru_cache(maxsize=32, typed=True)
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)

@functools.cache
def square(x):
    "Squares."
    return x * x

square.note = "extra attribute"
square(3)   # the cache has an entry here; it must not travel
fib(20)

class Geometry:
    @functools.lru_cache(maxsize=None)
    def area(self, side):
        return side * side

OBJ = (fib, square, Geometry, lambda: fib(10))
"""

CHECK_LRU = """
import functools
fib, square, Geometry, call_fib = obj
assert fib.cache_parameters() == {"maxsize": 32, "typed": True}
assert square.cache_parameters() == {"maxsize": None, "typed": False}
assert fib.cache_info().currsize == 0 and square.cache_info().currsize == 0
assert square.__doc__ == "Squares." and square.__name__ == "square"
assert square.note == "extra attribute"
assert square.__wrapped__(4) == 16 and square.cache_info().currsize == 0
assert fib.__wrapped__.__globals__["fib"] is fib      # recursion goes through the cache
assert call_fib.__globals__["fib"] is fib              # one wrapper per pickle
print(fib(30), fib.cache_info().misses, square(5), Geometry().area(3), call_fib())
"""


def test_lru_cache_wrappers_from_main(impl: Impl) -> None:
    assert roundtrip(impl, LRU, CHECK_LRU) == "832040 31 25 9 55\n"


def test_importable_lru_cache_wrapper_stays_by_name(impl: Impl) -> None:
    import re

    data = impl.dumps(re._compile)  # an lru_cache wrapper of an importable module
    assert b"lru_cache" not in data and pickle.loads(data) is re._compile


SINGLEDISPATCH = """
import functools, numbers

@functools.singledispatch
def describe(x):
    return "object"

@describe.register
def _(x: int):
    return "int"

@describe.register(list)
def _(x):
    return "list of " + ",".join(describe(i) for i in x)   # recursion through the wrapper

class Point:
    pass

@describe.register
def _(p: Point):
    return "point"

describe.register(numbers.Real, lambda x: "real")
describe(1); describe(1.5)  # fills the dispatch cache
describe.version = 2

OBJ = (describe, Point)
"""

CHECK_SINGLEDISPATCH = """
import numbers
describe, Point = obj
assert list(describe.registry) == [object, int, list, Point, numbers.Real]
assert describe.version == 2 and describe.__name__ == "describe"
print(describe(1), describe([1, "s", 2.5]), describe(Point()), describe(None))
"""


def test_singledispatch_from_main_keeps_its_registry(impl: Impl) -> None:
    out = roundtrip(impl, SINGLEDISPATCH, CHECK_SINGLEDISPATCH)
    assert out == "int list of int,object,real point object\n"


def test_importable_singledispatch_stays_by_name(impl: Impl) -> None:
    data = impl.dumps(functools.singledispatch)
    assert pickle.loads(data) is functools.singledispatch
    import pprint  # noqa: F401  (pkgutil.simplegeneric-like stdlib users)

    @functools.singledispatch
    def local(x: Any) -> str:
        return "local"

    assert pickle.loads(impl.dumps(local))(1) == "local"  # a local one: by value


NEWTYPE = """
import typing

UserId = typing.NewType("UserId", int)

class Account:
    pass

AccountRef = typing.NewType("AccountRef", Account)

def lookup(uid: UserId) -> AccountRef:
    return AccountRef(Account())

OBJ = (UserId, AccountRef, lookup)
"""

CHECK_NEWTYPE = """
import typing
UserId, AccountRef, lookup = obj
assert isinstance(UserId, typing.NewType)
assert UserId.__supertype__ is int and UserId.__module__ == "__main__"
assert AccountRef.__supertype__.__name__ == "Account"
assert typing.get_type_hints(lookup) == {"uid": UserId, "return": AccountRef}
print(repr(UserId), UserId(5), type(lookup(UserId(1))).__name__)
"""


def test_newtype_from_main(impl: Impl) -> None:
    assert roundtrip(impl, NEWTYPE, CHECK_NEWTYPE) == "__main__.UserId 5 Account\n"


def test_cloudpickle_pickles_newtype_by_name() -> None:
    # The gap this closes: cloudpickle (like the stdlib) pickles a __main__ NewType by name,
    # and loading it anywhere else fails.
    pytest.importorskip("cloudpickle", reason="cloudpickle (test extra) is not installed")
    data = produce(PYTHON_IMPL, NEWTYPE.replace("OBJ = (UserId, AccountRef, lookup)",
                                                "OBJ = UserId"), "cloudpickle")
    out = run_python("""
        import pickle, sys
        try:
            pickle.loads(sys.stdin.buffer.read())
        except AttributeError as exc:
            print("fails:", exc)
    """, data)
    # The wording changed in 3.14 ("module '__main__' has no attribute 'UserId'").
    assert out.startswith("fails: ") and "'UserId'" in out, out


def test_importable_newtype_stays_by_name(impl: Impl) -> None:
    data = impl.dumps(ImportableId)
    assert pickle.loads(data) is ImportableId


ImportableId = typing.NewType("ImportableId", str)


def test_wrappers_of_a_module_registered_by_value(impl: Impl, tmp_path: Any) -> None:
    (tmp_path / "ffp_wrapped_mod.py").write_text(
        "import functools, typing\n"
        "Celsius = typing.NewType('Celsius', float)\n"
        "@functools.lru_cache(maxsize=4)\n"
        "def to_f(c: Celsius) -> float:\n"
        "    return c * 9 / 5 + 32\n"
        "@functools.singledispatch\n"
        "def fmt(x):\n"
        "    return str(x)\n"
        "@fmt.register\n"
        "def _(x: float):\n"
        "    return f'{x:.1f}'\n")
    source = f"""
        import sys, fastfnpickle
        sys.path.insert(0, {str(tmp_path)!r})
        import ffp_wrapped_mod as m
        fastfnpickle.register_pickle_by_value(m)
        OBJ = (m.to_f, m.fmt, m.Celsius)
    """
    out = roundtrip(impl, source, """
        import sys
        assert "ffp_wrapped_mod" not in sys.modules
        to_f, fmt, Celsius = obj
        assert to_f.cache_parameters()["maxsize"] == 4 and Celsius.__module__ == "ffp_wrapped_mod"
        print(fmt(to_f(Celsius(100.0))), fmt(3))
    """)
    assert out == "212.0 3\n"


def test_lru_cache_carries_only_the_function_and_settings(impl: Impl) -> None:
    @functools.lru_cache(maxsize=7)
    def double(x: int) -> int:
        return 2 * x

    double(1)
    data = impl.dumps(double)
    # Not lru_cache's own cache_parameters lambda, nor the cached entries.
    assert b"cache_parameters" not in data and b"<lambda>" not in data
    loaded = pickle.loads(data)
    assert loaded(4) == 8 and loaded.cache_parameters() == {"maxsize": 7, "typed": False}

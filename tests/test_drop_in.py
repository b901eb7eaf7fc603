"""What cloudpickle pickles and fastfnpickle did not: memoryviews, the deprecated abc
descriptors, modules reached through closure cells and defaults, dynamic modules with their
``__builtins__``, the registry listing's type, the Pickler-subclass contract, and the words of
the deep-recursion error."""

import io
import pickle
import sys
import types
from typing import Any, List

import pytest
from _fresh import cloudpickle_roundtrip, roundtrip
from conftest import Impl, run_python

import fastfnpickle

# --------------------------------------------------------------------------------------------
# memoryview

MEMORYVIEWS = """
import array
buf = bytearray(range(256)) * 4096                      # 1 MiB
ints = array.array("i", range(12))
OBJ = [
    memoryview(b"contiguous bytes"),
    memoryview(buf)[10:20],                              # sliced, writable
    memoryview(b"abcdefghij")[::3],                     # non-contiguous
    memoryview(buf),                                     # large
    memoryview(ints).cast("B").cast("i", [3, 4]),       # 2-D ints
]
"""

CHECK_MEMORYVIEWS = """
import array
contiguous, sliced, strided, large, matrix = obj
assert all(type(v) is memoryview for v in obj)
assert contiguous.tobytes() == b"contiguous bytes" and contiguous.readonly
assert sliced.tobytes() == bytes(range(10, 20)) and not sliced.readonly
assert strided.tobytes() == b"adgj" and len(strided) == 4
assert large.nbytes == 1 << 20 and large.tobytes() == bytes(range(256)) * 4096
assert matrix.format == "i" and matrix.shape == (3, 4) and matrix.tolist()[2] == [8, 9, 10, 11]
print(*[bytes(v)[:4] for v in obj[:3]])
sliced[0] = 99
assert sliced[0] == 99
"""


def test_memoryviews(impl: Impl) -> None:
    out = roundtrip(impl, MEMORYVIEWS, CHECK_MEMORYVIEWS)
    assert out == "b'cont' b'\\n\\x0b\\x0c\\r' b'adgj'\n"
    # cloudpickle loads them as bytes; the bytes are the same.
    same = "print(*[bytes(v)[:4] for v in obj[:3]])"
    assert cloudpickle_roundtrip(MEMORYVIEWS, same) == out


def test_memoryview_with_a_format_that_cannot_be_rebuilt(impl: Impl) -> None:
    import ctypes

    class Pair(ctypes.Structure):
        _fields_ = [("a", ctypes.c_int), ("b", ctypes.c_double)]

    view = memoryview((Pair * 2)())
    with pytest.raises(pickle.PicklingError, match="memoryview of format") as info:
        impl.dumps({"v": view})
    assert any(n.startswith("pickling failed at obj['v']") for n in info.value.__notes__)


# --------------------------------------------------------------------------------------------
# Deprecated abc descriptors

ABC_CLASSES = """
import abc

class Shape(abc.ABC):
    @abc.abstractclassmethod
    def make(cls): ...
    @abc.abstractstaticmethod
    def kind(): ...
    @abc.abstractproperty
    def area(self): ...

class Square(Shape):
    def __init__(self, side): self.side = side
    @classmethod
    def make(cls): return cls(3)
    @staticmethod
    def kind(): return "square"
    @property
    def area(self): return self.side ** 2

OBJ = (Shape, Square)
"""

CHECK_ABC_TYPES = """
import abc
assert type(obj[0].__dict__["make"]) is abc.abstractclassmethod
assert type(obj[0].__dict__["kind"]) is abc.abstractstaticmethod
assert type(obj[0].__dict__["area"]) is abc.abstractproperty
"""

CHECK_ABC = """
Shape, Square = obj
try:
    Shape()
except TypeError:
    pass
else:
    raise AssertionError("Shape must stay abstract")
print(sorted(Shape.__abstractmethods__), Square.make().area, Square.kind())
"""


def test_deprecated_abc_descriptors(impl: Impl) -> None:
    out = roundtrip(impl, ABC_CLASSES, CHECK_ABC_TYPES + CHECK_ABC)
    assert out == "['area', 'kind', 'make'] 9 square\n"
    # cloudpickle rebuilds them as the plain descriptors (classmethod, ...): same behaviour.
    assert cloudpickle_roundtrip(ABC_CLASSES, CHECK_ABC) == out


# --------------------------------------------------------------------------------------------
# Modules reached through closure cells and parameter defaults

MODULES_IN_CELLS = """
import importlib, sys
import xml.etree.ElementTree, xml.dom.minidom, email.mime.text

def make():
    x = importlib.import_module("xml")
    def comment():
        return x.etree.ElementTree.Comment("in a cell")
    return comment

def by_default(m=sys.modules["xml"], *, mail=sys.modules["email"]):
    return m.dom.minidom.parseString("<a/>").documentElement.tagName, mail.mime.text.MIMEText

def nested():
    e = sys.modules["email"]
    return lambda: [e.mime.text.MIMEText("x")["Content-Type"] for _ in range(1)][0]

OBJ = (make(), by_default, nested())
"""

CHECK_MODULES_IN_CELLS = """
import sys
assert "xml.etree.ElementTree" in sys.modules and "xml.dom.minidom" in sys.modules  # by the load
comment, by_default, nested = obj
assert comment().text == "in a cell"
tag, mime = by_default()
print(tag, mime.__name__, nested())
"""


def test_submodules_reached_through_cells_and_defaults(impl: Impl) -> None:
    out = roundtrip(impl, MODULES_IN_CELLS, CHECK_MODULES_IN_CELLS)
    assert out == 'a MIMEText text/plain; charset="us-ascii"\n'


def test_local_chains_are_found_from_the_bytecode() -> None:
    from fastfnpickle import _bytecode as B
    from fastfnpickle import _core_py

    def f(a, m=sys, *, k=io):
        def inner():
            return m.path.sep
        return a.real, k.StringIO, inner

    chains = _core_py.code_info(f.__code__).chains
    assert ((B.HEAD_FAST, "a"), ("real",)) in chains
    assert ((B.HEAD_FAST, "k"), ("StringIO",)) in chains
    assert ((B.HEAD_DEREF, "m"), ("path", "sep")) in chains


def test_local_chains_match_between_twins(impl: Impl) -> None:
    import email.mime.text  # noqa: F401

    def f(e=sys.modules["email"], n=1):
        g = sys.modules["xml"]
        return lambda: (e.mime.text, g.etree, n.real)

    info = impl.core.code_info(f.__code__)
    from fastfnpickle import _core_py
    assert info.chains == _core_py.code_info(f.__code__).chains
    assert impl.dumps(f) == _PY_DUMPS(f)


def _PY_DUMPS(obj: Any) -> bytes:
    from conftest import PYTHON_IMPL
    return PYTHON_IMPL.dumps(obj)


# --------------------------------------------------------------------------------------------
# Dynamic modules

DYNAMIC_MODULE = """
import builtins, types
mod = types.ModuleType("scratch", "a module made at run time")
exec(compile("SCALE = 3\\ndef triple(x):\\n    return len([x]) * x * SCALE\\n",
             "<scratch>", "exec"),
     mod.__dict__)
mod.data = {"k": [1, 2]}
restricted = types.ModuleType("restricted")
restricted.__builtins__ = {"len": len}
OBJ = (mod, restricted)
"""

CHECK_DYNAMIC_MODULE = """
import builtins
mod, restricted = obj
assert mod.__builtins__ is vars(builtins)
assert mod.__doc__ == "a module made at run time"
assert sorted(k for k in vars(mod) if not k.startswith("__")) == ["SCALE", "data", "triple"]
assert restricted.__builtins__ == {"len": len}
print(mod.triple(2), mod.data)
"""


def test_dynamic_module_keeps_builtins_and_entries(impl: Impl) -> None:
    out = roundtrip(impl, DYNAMIC_MODULE, CHECK_DYNAMIC_MODULE)
    assert out == "6 {'k': [1, 2]}\n"
    # cloudpickle drops __builtins__ and puts the loader's back: same answer for ``mod``.
    assert cloudpickle_roundtrip(DYNAMIC_MODULE, "print(obj[0].triple(2), obj[0].data)") == out


def test_dynamic_module_entry_that_cannot_be_pickled(impl: Impl) -> None:
    import threading

    mod = types.ModuleType("holds_a_lock")
    mod.lock = threading.Lock()
    with pytest.raises(TypeError) as info:
        impl.dumps(mod)
    assert any(n.startswith("pickling failed at obj.lock") for n in info.value.__notes__)


# --------------------------------------------------------------------------------------------
# API contracts


def test_registry_listing_is_a_set() -> None:
    import json

    assert fastfnpickle.list_registry_pickle_by_value() == set()
    fastfnpickle.register_pickle_by_value(json)
    try:
        listing = fastfnpickle.list_registry_pickle_by_value()
        assert type(listing) is set and listing == {"json"}
        listing.add("mutating the copy changes nothing")
        assert fastfnpickle.list_registry_pickle_by_value() == {"json"}
    finally:
        fastfnpickle.unregister_pickle_by_value(json)


@pytest.mark.parametrize("calls_stdlib_init", [False, True])
def test_pickler_subclass_without_base_init(impl: Impl, calls_stdlib_init: bool) -> None:
    class Forgetful(impl.Pickler):
        def __init__(self, file: Any) -> None:
            if calls_stdlib_init:  # skips ours, calls the C pickler's
                pickle.Pickler.__init__(self, file)
            self.file = file

    with pytest.raises(pickle.PicklingError, match=r"was not called by .*Forgetful"):
        Forgetful(io.BytesIO()).dump(lambda: 1)
    # The stdlib's own subclasses behave the same way.
    with pytest.raises(pickle.PicklingError):
        type("StdForgetful", (pickle.Pickler,), {"__init__": lambda self, f: None})(
            io.BytesIO()).dump(1)


def test_deep_recursion_message(impl: Impl) -> None:
    deep: List[Any] = []
    cur = deep
    for _ in range(100_000):
        cur.append([])
        cur = cur[0]
    with pytest.raises(pickle.PicklingError) as info:
        impl.dumps(deep)
    first = str(info.value).splitlines()[0]
    assert "deep recursion" in first and "too deeply nested" in first


def test_deep_recursion_message_in_a_fresh_interpreter(impl: Impl) -> None:
    out = run_python("""
        import fastfnpickle
        deep = cur = []
        for _ in range(100_000):
            cur.append([])
            cur = cur[0]
        try:
            fastfnpickle.dumps(deep)
        except fastfnpickle.PicklingError as exc:
            print("deep recursion" in str(exc), isinstance(exc, RecursionError))
    """, env=impl.env())
    assert out == "True True\n"

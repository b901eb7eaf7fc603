"""Objects beyond functions and classes: code objects, cells, modules, mapping proxies, dict
views, loggers, WeakSets, bound methods, method wrappers, descriptors, typing constructs,
singletons, the ``types`` module's types, and protocol-5 out-of-band buffers."""

import collections
import gc
import logging
import pickle
import textwrap
import types
import typing
import weakref
from typing import Any, Callable, Dict, List, Tuple

import pytest
from conftest import Impl, check_features_in_fresh_interpreter, load_in_subprocess, run_check


def build_code_and_cells() -> Any:
    k = 3

    def f(x):
        return x + k
    return {"code": f.__code__, "lambda_code": (lambda: 42).__code__,
            "cell": f.__closure__[0], "f": f, "original_repr": repr(f.__code__.co_consts)}


CHECK_CODE_AND_CELLS = """
import types
code = obj["code"]
assert type(code) is types.CodeType and code.co_name == "f"
assert code.co_freevars == ("k",) and code.co_varnames == ("x",)
assert code is obj["f"].__code__  # one object in one pickle
assert types.FunctionType(obj["lambda_code"], {})() == 42
assert type(obj["cell"]) is types.CellType and obj["cell"].cell_contents == 3
assert obj["cell"] is obj["f"].__closure__[0]
"""


def build_modules() -> Any:
    import json
    import os.path
    dyn = types.ModuleType("ffp_dynamic_module", "dynamic doc")
    exec(textwrap.dedent("""
        X = 2
        def get_x():
            return X
        class Thing:
            pass
    """), dyn.__dict__)
    return {"json": json, "ospath": os.path, "dyn": dyn}


CHECK_MODULES = """
import sys, types
assert obj["json"] is sys.modules["json"]
assert obj["ospath"] is sys.modules["os"].path
dyn = obj["dyn"]
assert type(dyn) is types.ModuleType and dyn.__name__ == "ffp_dynamic_module"
assert dyn.__doc__ == "dynamic doc" and "ffp_dynamic_module" not in sys.modules
assert dyn.X == 2 and dyn.get_x() == 2
assert dyn.Thing.__module__ == "ffp_dynamic_module" and isinstance(dyn.Thing(), dyn.Thing)
"""


def build_mappings() -> Any:
    d = {"a": 1, "b": 2}
    od = collections.OrderedDict([("z", 1), ("y", 2)])
    return {
        "proxy": types.MappingProxyType({"k": [1]}),
        "keys": d.keys(), "values": d.values(), "items": d.items(),
        "okeys": od.keys(), "ovalues": od.values(), "oitems": od.items(),
        "types": [type(v).__name__ for v in (d.keys(), d.values(), d.items(), od.keys(),
                                             od.values(), od.items())],
    }


CHECK_MAPPINGS = """
import types
p = obj["proxy"]
assert type(p) is types.MappingProxyType and dict(p) == {"k": [1]}
views = [obj[k] for k in ("keys", "values", "items", "okeys", "ovalues", "oitems")]
assert list(obj["keys"]) == ["a", "b"] and list(obj["values"]) == [1, 2]
assert list(obj["items"]) == [("a", 1), ("b", 2)]
assert list(obj["okeys"]) == ["z", "y"] and list(obj["ovalues"]) == [1, 2]
assert list(obj["oitems"]) == [("z", 1), ("y", 2)]
assert [type(v).__name__ for v in views] == obj["types"]
"""


def build_loggers() -> Any:
    return {"named": logging.getLogger("ffp.test.logger"), "root": logging.getLogger(),
            "root_attr": logging.root}


CHECK_LOGGERS = """
import logging
assert obj["named"] is logging.getLogger("ffp.test.logger")
assert obj["root"] is logging.getLogger() is obj["root_attr"]
"""


def build_weak_and_methods() -> Any:
    class Item:
        def __init__(self, n):
            self.n = n

        def double(self):
            return self.n * 2

        @classmethod
        def make(cls, n):
            return cls(n)

    a, b = Item(1), Item(2)
    ws = weakref.WeakSet([a, b])

    def plain():
        return "plain"

    return {
        "ws": ws, "members": [a, b], "bound": a.double, "bound_cls": Item.make,
        "builtin_bound": "abc".upper, "cm": classmethod(plain), "sm": staticmethod(plain),
        "prop": property(Item.double, None, None, "prop doc"), "Item": Item,
    }


CHECK_WEAK_AND_METHODS = """
import weakref
a, b = obj["members"]
ws = obj["ws"]
assert type(ws) is weakref.WeakSet and len(ws) == 2 and a in ws and b in ws
bound = obj["bound"]
assert bound.__self__ is a and bound() == 2
assert obj["bound_cls"].__self__ is obj["Item"] and obj["bound_cls"](5).n == 5
assert obj["builtin_bound"]() == "ABC"
assert type(obj["cm"]) is classmethod and obj["cm"].__func__() == "plain"
assert type(obj["sm"]) is staticmethod and obj["sm"].__func__() == "plain"
prop = obj["prop"]
assert type(prop) is property and prop.__doc__ == "prop doc" and prop.fget(b) == 4
assert prop.fset is None
"""


def build_descriptors() -> Any:
    class Slotted:
        __slots__ = ("x",)

    return {"real": float.real, "imag": complex.__dict__["imag"], "slot": Slotted.__dict__["x"],
            "Slotted": Slotted, "fglobals": types.FunctionType.__globals__}


CHECK_DESCRIPTORS = """
import types
assert obj["real"] is float.real and obj["real"].__get__(2.5) == 2.5
assert obj["imag"] is complex.__dict__["imag"]
assert obj["fglobals"] is types.FunctionType.__globals__
s = obj["Slotted"]()
assert obj["slot"] is obj["Slotted"].__dict__["x"]
obj["slot"].__set__(s, 7)
assert s.x == 7
"""


def build_typing() -> Any:
    class Local:
        pass

    out = {
        "union": typing.Union[int, str], "optional": typing.Optional[int],
        "callable": typing.Callable[..., int], "callable2": typing.Callable[[int, str], None],
        "list": typing.List[int], "literal": typing.Literal["a", 1],
        "dict_local": typing.Dict[str, Local], "tuple": typing.Tuple[int, ...],
        "any": typing.Any, "Local": Local, "builtin_generic": list[int], "pipe_union": int | str,
    }
    return out


CHECK_TYPING = """
import sys, typing
assert obj["union"] == typing.Union[int, str]
assert obj["optional"] == typing.Optional[int]
assert obj["callable"] == typing.Callable[..., int]
assert obj["callable2"] == typing.Callable[[int, str], None]
assert obj["list"] == typing.List[int] and obj["literal"] == typing.Literal["a", 1]
assert obj["tuple"] == typing.Tuple[int, ...] and obj["any"] is typing.Any
assert obj["dict_local"] == typing.Dict[str, obj["Local"]]
assert typing.get_args(obj["dict_local"])[1] is obj["Local"]
assert obj["builtin_generic"] == list[int]
assert obj["pipe_union"] == (int | str)
"""


def _types_module_types() -> Dict[str, type]:
    return {name: value for name, value in sorted(vars(types).items())
            if isinstance(value, type) and not name.startswith("_")}


def build_singletons() -> Any:
    return {"ellipsis": Ellipsis, "ni": NotImplemented, "tEllipsis": type(Ellipsis),
            "tNotImplemented": type(NotImplemented), "tNone": type(None),
            "types": _types_module_types()}


CHECK_SINGLETONS = """
import types
assert obj["ellipsis"] is Ellipsis and obj["ni"] is NotImplemented
assert obj["tEllipsis"] is type(Ellipsis) and obj["tNotImplemented"] is type(NotImplemented)
assert obj["tNone"] is type(None)
loaded = obj["types"]
for name in ("FunctionType", "CodeType", "CellType", "ModuleType", "MappingProxyType",
             "MethodType", "BuiltinFunctionType", "GeneratorType", "SimpleNamespace"):
    assert loaded[name] is getattr(types, name), name
if hasattr(types, "NoneType"):
    assert loaded["NoneType"] is type(None)
for name, value in loaded.items():
    assert value is getattr(types, name), name
"""


FEATURES: Dict[str, Tuple[Callable[[], Any], str]] = {
    "code_and_cells": (build_code_and_cells, CHECK_CODE_AND_CELLS),
    "modules": (build_modules, CHECK_MODULES),
    "mappings": (build_mappings, CHECK_MAPPINGS),
    "loggers": (build_loggers, CHECK_LOGGERS),
    "weak_and_methods": (build_weak_and_methods, CHECK_WEAK_AND_METHODS),
    "descriptors": (build_descriptors, CHECK_DESCRIPTORS),
    "typing": (build_typing, CHECK_TYPING),
    "singletons": (build_singletons, CHECK_SINGLETONS),
}


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_round_trip_in_process(impl, feature: str) -> None:
    build, check = FEATURES[feature]
    run_check(check, pickle.loads(impl.dumps(build())))


def test_all_features_in_fresh_interpreter(impl) -> None:
    check_features_in_fresh_interpreter(impl, FEATURES)


def test_code_object_round_trip_is_equal(impl) -> None:
    def f(a, *, b=1):
        return [a + i for i in range(b)]
    assert pickle.loads(impl.dumps(f.__code__)) == f.__code__


# --------------------------------------------------------------------------------------------
# Protocol 5 out-of-band buffers inside functions

def test_numpy_array_in_closure_goes_out_of_band(impl) -> None:
    np = pytest.importorskip("numpy")
    arr = np.arange(4096, dtype=np.uint8)

    def total():
        return int(arr.sum()), arr.shape

    buffers: List[pickle.PickleBuffer] = []
    data = impl.dumps(total, protocol=5, buffer_callback=buffers.append)
    assert len(buffers) == 1
    assert bytes(buffers[0].raw()) == arr.tobytes()
    assert arr.tobytes() not in data  # the array bytes are not in band
    assert len(data) < 4096
    loaded = pickle.loads(data, buffers=buffers)
    assert loaded() == (int(arr.sum()), (4096,))
    raw = [bytes(b.raw()) for b in buffers]
    load_in_subprocess(pickle.dumps((data, raw), protocol=5), f"""
        data, raw = obj
        f = pickle.loads(data, buffers=raw)
        assert f() == ({int(arr.sum())}, (4096,))
        arr = f.__closure__[0].cell_contents
        assert arr.dtype.name == "uint8" and int(arr[-1]) == 255
        try:
            pickle.loads(data)
        except pickle.UnpicklingError:
            pass
        else:
            raise AssertionError("an out-of-band pickle loaded without its buffers")
    """, impl)


def test_pickle_buffer_in_globals_goes_out_of_band(impl) -> None:
    payload = bytearray(b"x" * 1000)
    ns: Dict[str, Any] = {"__name__": "ffp_test_oob_globals", "BUF": pickle.PickleBuffer(payload)}
    exec("def get():\n    return bytes(BUF)\n", ns)
    buffers: List[pickle.PickleBuffer] = []
    data = impl.dumps(ns["get"], protocol=5, buffer_callback=buffers.append)
    assert len(buffers) == 1 and bytes(payload) not in data
    assert pickle.loads(data, buffers=buffers)() == bytes(payload)
    # With buffer_callback returning true the buffer stays in band.
    inband = impl.dumps(ns["get"], protocol=5, buffer_callback=lambda b: True)
    assert bytes(payload) in inband and pickle.loads(inband)() == bytes(payload)


def test_a_new_type_at_a_freed_plain_types_address(impl: Impl) -> None:
    # The compiled core remembers the last type whose instances it left to the C pickler, by
    # address and version tag. A class freed and a module subclass made at its address (which
    # the allocator does here every time) must not be taken for it: a false match would hand
    # the module to the C pickler, which cannot pickle it.
    reused = 0
    data = b""
    for i in range(20):
        plain_cls = type("Plain", (), {})
        impl.dumps([plain_cls(), plain_cls()])
        address = id(plain_cls)
        del plain_cls
        gc.collect()
        mod_cls = type("ModuleKind", (types.ModuleType,), {})
        reused += id(mod_cls) == address
        mod = mod_cls(f"ffp_made_here_{i}")
        mod.x = i
        data = impl.dumps(mod)
        assert pickle.loads(data).x == i
    if not reused:
        pytest.skip("the allocator never reused a freed class's address here")
    load_in_subprocess(data, """
        import sys
        assert type(obj).__name__ == "ModuleKind" and obj.x == 19
        assert obj.__name__ == "ffp_made_here_19" and "ffp_made_here_19" not in sys.modules
    """, impl)


def test_module_subclass_keeps_its_class(impl: Impl) -> None:
    # The pattern of modules with properties or a class-level __getattr__: before, such a
    # module loaded as a plain ModuleType without them (cloudpickle refuses it outright).
    class LazyModule(types.ModuleType):
        @property
        def answer(self) -> int:
            return self.base * 2

        def __getattr__(self, name: str) -> str:
            return f"lazy:{name}"

    mod = LazyModule("ffp_lazy_module", "a lazy module")
    mod.base = 21
    data = impl.dumps(mod)
    loaded = pickle.loads(data)
    assert type(loaded).__name__ == "LazyModule" and isinstance(loaded, types.ModuleType)
    assert loaded.answer == 42 and loaded.anything == "lazy:anything"
    load_in_subprocess(data, """
        import sys, types
        assert type(obj).__name__ == "LazyModule" and isinstance(obj, types.ModuleType)
        assert obj.__name__ == "ffp_lazy_module" and obj.__doc__ == "a lazy module"
        assert obj.answer == 42 and obj.missing == "lazy:missing"
        assert "ffp_lazy_module" not in sys.modules
    """, impl)
    from fastfnpickle.explain import explain_bytes
    assert "obj.__class__  class " in str(explain_bytes(data))
    plain = types.ModuleType("ffp_plain_module")
    assert b"LazyModule" not in impl.dumps(plain)


def test_module_of_a_non_module_type_is_refused() -> None:
    from fastfnpickle import _rebuild
    with pytest.raises(pickle.UnpicklingError, match="kind must be a module type, not the class"):
        _rebuild.make_module("m", dict)

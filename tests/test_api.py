"""Public API: names, protocols, the Pickler contract (subclassing, persistent_id,
dispatch_table), use as a ``pickle_module``, and one flat pickle per dump (no nested pickles)."""

import base64
import collections
import copyreg
import inspect
import io
import pickle
import pickletools
import textwrap
from typing import Any, Dict, List

import pytest
from conftest import load_in_subprocess, run_python

import fastfnpickle


def dyn_namespace(source: str, module_name: str = "ffp_test_dyn_api") -> Dict[str, Any]:
    """Execute ``source`` as the body of a module that no process can import."""
    ns: Dict[str, Any] = {"__name__": module_name}
    exec(compile(textwrap.dedent(source), f"<{module_name}>", "exec"), ns)
    return ns


def ops(data: bytes) -> List[Any]:
    return list(pickletools.genops(data))


# --------------------------------------------------------------------------------------------
# Names and plain round trips

PUBLIC_NAMES = [
    "dumps", "dump", "loads", "load", "Pickler", "Unpickler", "DEFAULT_PROTOCOL",
    "HIGHEST_PROTOCOL", "PicklingError", "UnpicklingError", "register_pickle_by_value",
    "unregister_pickle_by_value", "list_registry_pickle_by_value", "__version__",
    "IMPLEMENTATION",
]


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_public_name_exists(name: str) -> None:
    assert hasattr(fastfnpickle, name)


def test_public_constants_and_exceptions() -> None:
    assert fastfnpickle.DEFAULT_PROTOCOL == fastfnpickle.HIGHEST_PROTOCOL == pickle.HIGHEST_PROTOCOL
    assert fastfnpickle.PicklingError is pickle.PicklingError
    assert fastfnpickle.UnpicklingError is pickle.UnpicklingError
    assert fastfnpickle.IMPLEMENTATION in ("python", "cython")
    assert isinstance(fastfnpickle.__version__, str) and fastfnpickle.__version__
    assert set(fastfnpickle.__all__) >= set(PUBLIC_NAMES)


def test_dumps_dump_loads_load_round_trip() -> None:
    k = 7
    f = lambda x: x + k  # noqa: E731
    data = fastfnpickle.dumps(f)
    assert fastfnpickle.loads(data)(1) == 8
    buf = io.BytesIO()
    fastfnpickle.dump(f, buf)
    assert buf.getvalue() == data
    buf.seek(0)
    assert fastfnpickle.load(buf)(2) == 9
    # The stdlib loader is all a reader needs.
    assert pickle.loads(data)(3) == 10


def test_dumps_keyword_arguments() -> None:
    data = fastfnpickle.dumps([1, 2], protocol=2, buffer_callback=None)
    assert data[:2] == b"\x80\x02"
    with pytest.raises(ValueError):
        # The stdlib refuses buffer_callback below protocol 5; so must we.
        fastfnpickle.dumps([1], protocol=4, buffer_callback=lambda b: None)


def test_pickler_signature(impl) -> None:
    params = inspect.signature(impl.Pickler).parameters
    assert list(params)[:3] == ["file", "protocol", "buffer_callback"]
    assert params["protocol"].default is None
    assert params["buffer_callback"].default is None
    assert issubclass(impl.Pickler, pickle.Pickler)
    assert not issubclass(impl.Pickler, pickle._Pickler)  # the slow pure-Python pickler


def test_pickler_defines_no_persistent_id(impl) -> None:
    for klass in impl.Pickler.__mro__:
        if klass is pickle.Pickler:
            break
        assert "persistent_id" not in vars(klass), klass


def test_no_chainmap_dispatch_table(impl) -> None:
    for klass in impl.Pickler.__mro__:
        for value in vars(klass).values():
            assert not isinstance(value, collections.ChainMap), klass
    p = impl.Pickler(io.BytesIO())
    table = getattr(p, "dispatch_table", None)
    assert not isinstance(table, collections.ChainMap)


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_protocol_honoured(impl, protocol: int) -> None:
    base = 10
    f = lambda x: x * base  # noqa: E731
    data = impl.dumps({"f": f, "data": [1, 2.5, "s", b"b"]}, protocol=protocol)
    first = ops(data)[0]
    if protocol >= 2:
        assert first[0].name == "PROTO" and first[1] == protocol
    else:
        assert all(op.name != "PROTO" for op, _, _ in ops(data))
    # No opcode newer than the protocol asked for, except the TUPLE2 that the C pickler itself
    # writes for every reduce value with a state setter (CPython does so on all protocols).
    newer = {op.name for op, _, _ in ops(data) if op.proto > protocol}
    assert newer <= {"TUPLE2"}, newer
    obj = pickle.loads(data)
    assert obj["f"](3) == 30 and obj["data"] == [1, 2.5, "s", b"b"]


def test_protocol_none_is_default(impl) -> None:
    data = impl.dumps(lambda: 1, protocol=None)
    assert data[:2] == bytes([0x80, fastfnpickle.DEFAULT_PROTOCOL])


def test_protocols_in_fresh_interpreter(impl) -> None:
    n = 4
    payload = {p: impl.dumps(lambda x: x + n + p, protocol=p)
               for p in range(pickle.HIGHEST_PROTOCOL + 1)}
    load_in_subprocess(pickle.dumps(payload), """
        for p, data in obj.items():
            assert pickle.loads(data)(1) == 5 + p, p
        print("ok")
    """, impl)


# --------------------------------------------------------------------------------------------
# Subclass with persistent_id; per-instance dispatch_table

class _Token:
    """Stands for an external resource that persistent_id keeps out of the pickle."""

    def __init__(self, name: str) -> None:
        self.name = name


def _persistent_pickler(impl) -> type:
    class PersistentPickler(impl.Pickler):  # type: ignore[misc, name-defined]
        seen: List[str]

        def persistent_id(self, obj: Any) -> Any:
            if type(obj) is _Token:
                self.seen.append(obj.name)
                return "tok:" + obj.name
            return None
    return PersistentPickler


def _persistent_payload() -> Any:
    ns = dyn_namespace("""
        def use_global():
            return GLOBAL_TOKEN
    """)
    ns["GLOBAL_TOKEN"] = _Token("in-globals")
    cell_token = _Token("in-closure")
    default_token = _Token("in-defaults")

    def use_cell(t=default_token):
        return cell_token, t
    return {"globals": ns["use_global"], "closure": use_cell}


def test_persistent_id_applies_inside_functions(impl) -> None:
    Pickler = _persistent_pickler(impl)
    buf = io.BytesIO()
    p = Pickler(buf)
    p.seen = []
    p.dump(_persistent_payload())
    assert sorted(p.seen) == ["in-closure", "in-defaults", "in-globals"]
    data = buf.getvalue()
    assert b"_Token" not in data

    class Loader(pickle.Unpickler):
        def persistent_load(self, pid: str) -> str:
            return "resolved " + pid

    obj = Loader(io.BytesIO(data)).load()
    assert obj["globals"]() == "resolved tok:in-globals"
    assert obj["closure"]() == ("resolved tok:in-closure", "resolved tok:in-defaults")

    out = run_python("""
        import base64, io, pickle, sys
        class Loader(pickle.Unpickler):
            def persistent_load(self, pid):
                return "resolved " + pid
        obj = Loader(io.BytesIO(base64.b64decode(sys.stdin.buffer.read()))).load()
        assert obj["globals"]() == "resolved tok:in-globals"
        assert obj["closure"]() == ("resolved tok:in-closure", "resolved tok:in-defaults")
        print("ok")
    """, base64.b64encode(data), env=impl.env())
    assert out.strip() == "ok"


class _Replaced:
    def __init__(self, value: int) -> None:
        self.value = value


def test_per_instance_dispatch_table(impl) -> None:
    def reduce_replaced(obj: _Replaced) -> Any:
        return (str, (f"replaced {obj.value}",))

    item = _Replaced(3)
    f = lambda: item  # noqa: E731
    for table in ({_Replaced: reduce_replaced},
                  {**copyreg.dispatch_table, _Replaced: reduce_replaced}):
        buf = io.BytesIO()
        p = impl.Pickler(buf)
        p.dispatch_table = table
        p.dump({"f": f, "direct": item})
        data = buf.getvalue()
        obj = pickle.loads(data)
        assert obj["direct"] == "replaced 3"
        assert obj["f"]() == "replaced 3"
    load_in_subprocess(data, """
        assert obj["f"]() == "replaced 3"
        assert obj["f"]() is obj["direct"]
    """, impl)


# --------------------------------------------------------------------------------------------
# Drop-in pickle_module

def test_usable_as_pickle_module(impl) -> None:
    module = fastfnpickle
    for name in ("Pickler", "Unpickler", "dump", "load", "dumps", "loads"):
        assert callable(getattr(module, name)), name
    scale = 3
    state = {"weights": [1.0, 2.0], "fn": lambda x: x * scale}
    # What torch.save does with pickle_module and pickle_protocol=2.
    buf = io.BytesIO()
    module.Pickler(buf, protocol=2).dump(state)
    buf.seek(0)
    back = module.Unpickler(buf).load()
    assert back["weights"] == [1.0, 2.0] and back["fn"](2) == 6
    buf = io.BytesIO()
    module.dump(state, buf, protocol=2)
    buf.seek(0)
    assert module.load(buf)["fn"](1) == 3


# --------------------------------------------------------------------------------------------
# One flat pickle: the outer memo covers everything inside functions

def test_no_nested_pickles_and_shared_memo(impl) -> None:
    shared = {"payload": list(range(5)), "marker": "shared-marker-5a1f"}

    def reader():
        return shared

    def other():
        return shared["payload"]

    data = impl.dumps((reader, other, shared))
    stream = ops(data)
    assert [op.name for op, _, _ in stream].count("STOP") == 1
    assert stream[-1][0].name == "STOP" and stream[-1][2] == len(data) - 1
    assert [op.name for op, _, _ in stream].count("PROTO") == 1
    for _op, arg, _ in stream:
        if isinstance(arg, (bytes, bytearray)):
            # A pickle embedded as bytes would start with PROTO and end with STOP.
            assert not (arg[:1] == b"\x80" and arg[-1:] == b"."), "nested pickle found"
    # The dict is written once; every later use is a memo reference.
    assert data.count(b"shared-marker-5a1f") == 1
    assert any(op.name in ("BINGET", "LONG_BINGET", "GET") for op, _, _ in stream)

    r, o, s = pickle.loads(data)
    assert r() is s
    assert o() is s["payload"]
    assert r.__closure__[0].cell_contents is s
    load_in_subprocess(data, """
        r, o, s = obj
        assert r() is s and o() is s["payload"]
        assert s["payload"] == [0, 1, 2, 3, 4]
        print("ok")
    """, impl)

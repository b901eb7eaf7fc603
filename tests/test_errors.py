"""Errors that say where: the path note on pickling failures, hints for known unpicklable
kinds, deep nesting, and the version check when loading a function from another Python."""

import gc
import io
import pickle
import socket
import sqlite3
import sys
import threading
import traceback
from typing import Any, Dict, List

import pytest
from conftest import Impl, run_python

from fastfnpickle import _errors
from fastfnpickle._format import CODE_TAG

LOCK_HINT = "hint: thread locks belong to the running process"


def notes(exc: BaseException) -> List[str]:
    """Our notes: 3.14+'s C pickler adds its own first ("when serializing ..."), kept as the
    stdlib adds them."""
    return [n for n in getattr(exc, "__notes__", None) or []
            if not n.startswith("when serializing ")]


def failure(impl: Impl, obj: Any) -> BaseException:
    with pytest.raises(Exception) as info:
        impl.dumps(obj)
    return info.value


def dynamic(src: str, **namespace: Any) -> Dict[str, Any]:
    """Run ``src`` as the body of a module that cannot be imported (so its functions and
    classes pickle by value) with ``namespace`` as extra globals."""
    g: Dict[str, Any] = {"__name__": "not_importable_mod"}
    g.update(namespace)
    exec(src, g)
    return g


class Layer:
    def __init__(self, activation: Any = None) -> None:
        self.activation = activation


class Model:
    def __init__(self, layers: List[Layer]) -> None:
        self.layers = layers


class HasLock:
    def __init__(self) -> None:
        self._lock = threading.Lock()


class RefusesReduce:
    def __reduce__(self) -> Any:
        raise ValueError("RefusesReduce does not pickle (user __reduce__)")


class Slotted:
    __slots__ = ("payload",)

    def __init__(self, payload: Any) -> None:
        self.payload = payload


def make_activation(state: Any) -> Any:
    def activation(x: Any) -> Any:
        return (x, state)
    return activation


# --------------------------------------------------------------------------------------------
# Paths

def test_path_through_dicts_attributes_lists_and_closures(impl: Impl) -> None:
    layers = [Layer() for _ in range(5)]
    layers[3].activation = make_activation(HasLock())
    exc = failure(impl, {"model": Model(layers), "other": 1})
    assert type(exc) is TypeError and "_thread.lock" in str(exc)  # original type and message
    assert notes(exc)[0] == (
        "pickling failed at obj['model'].layers[3].activation.__closure__[0]"
        ".cell_contents._lock (type: _thread.lock; closure variable state)")
    assert notes(exc)[1].startswith(LOCK_HINT)


def test_closure_variables_are_named_in_path_order(impl: Impl) -> None:
    # Cells are numbered by co_freevars, which is sorted by name: `lock` is cell 1 here.
    ns = dynamic(
        "import threading\n"
        "def outer(alpha, lock):\n"
        "    def inner():\n"
        "        return alpha, lock\n"
        "    return inner\n"
        "def wrap(zeta, fn):\n"
        "    def call():\n"
        "        return zeta, fn()\n"
        "    return call\n")
    inner = ns["outer"](1, threading.Lock())
    assert inner.__code__.co_freevars == ("alpha", "lock")
    exc = failure(impl, inner)
    assert notes(exc)[0] == (
        "pickling failed at inner.__closure__[1].cell_contents "
        "(type: _thread.lock; closure variable lock)")
    outer = ns["wrap"](2, inner)
    exc = failure(impl, {"job": outer})
    assert notes(exc)[0] == (
        "pickling failed at obj['job'].__closure__[0].cell_contents.__closure__[1]"
        ".cell_contents (type: _thread.lock; closure variables fn, lock)")
    # A cell pickled on its own has no function to name it.
    exc = failure(impl, [inner.__closure__[1]])
    assert notes(exc)[0] == "pickling failed at obj[0].cell_contents (type: _thread.lock)"
    # The path must evaluate to the object it names.
    path = notes(exc)[0].split(" at ", 1)[1].split(" (type", 1)[0]
    assert eval(path, {"obj": [inner.__closure__[1]]}) is inner.__closure__[1].cell_contents


def test_path_through_tuples_sets_and_slots(impl: Impl) -> None:
    gen = (i for i in range(3))
    exc = failure(impl, [0, (1, "a", Slotted({"k": [None, gen]}))])
    assert notes(exc)[0] == "pickling failed at obj[1][2].payload['k'][1] (type: generator)"
    assert notes(exc)[1].startswith("hint: generators hold a suspended frame")
    exc = failure(impl, {"s": frozenset([RefusesReduce()])})
    assert notes(exc) == [
        "pickling failed at list(obj['s'])[0] (type: test_errors.RefusesReduce)"]


def test_non_literal_keys_use_positions(impl: Impl) -> None:
    lock = threading.Lock()
    exc = failure(impl, {Layer: "a", frozenset([1]): lock})
    assert notes(exc)[0] == "pickling failed at list(obj.values())[1] (type: _thread.lock)"


def test_path_through_function_globals(impl: Impl) -> None:
    ns = dynamic("CACHE = {'conn': conn}\ndef handler(req):\n    return CACHE[req]\n",
                 conn=sqlite3.connect(":memory:"))
    exc = failure(impl, ns["handler"])
    assert notes(exc) == [
        "pickling failed at handler.__globals__['CACHE']['conn'] (type: sqlite3.Connection)",
        "hint: database connections cannot be pickled; pickle what you connect with (e.g. the "
        "database path) and reconnect after loading",
    ]
    # The same function one level down, under a key.
    exc = failure(impl, {"h": ns["handler"]})
    assert notes(exc)[0].startswith("pickling failed at obj['h'].__globals__['CACHE']['conn']")


def test_path_through_defaults_kwdefaults_and_function_attributes(impl: Impl) -> None:
    ns = dynamic("def f(a, b=(1, gen)):\n    return a\n"
                 "def g(*, k=lock):\n    return k\n", gen=(i for i in []), lock=threading.RLock())
    ns["f"].extra = {"x": RefusesReduce()}
    exc = failure(impl, ns["f"])
    assert notes(exc)[0] == "pickling failed at f.__defaults__[0][1] (type: generator)"
    exc = failure(impl, ns["g"])
    assert notes(exc)[0] == "pickling failed at g.__kwdefaults__['k'] (type: _thread.RLock)"
    ns["f"].__defaults__ = (1, 2)
    exc = failure(impl, ns["f"])
    assert type(exc) is ValueError and str(exc).startswith("RefusesReduce does not pickle")
    assert notes(exc) == ["pickling failed at f.extra['x'] (type: test_errors.RefusesReduce)"]


def test_path_through_class_attributes(impl: Impl) -> None:
    class Base:
        def run(self) -> int:
            return 1

    class Service(Base):
        def run(self) -> int:  # its __class__ cell points back at Service
            return super().run() + 1
        POOL = {"lock": threading.Lock()}

    exc = failure(impl, Service)
    assert notes(exc)[0] == "pickling failed at Service.POOL['lock'] (type: _thread.lock)"
    exc = failure(impl, [Service()])
    assert notes(exc)[0] == "pickling failed at type(obj[0]).POOL['lock'] (type: _thread.lock)"


def test_user_reduce_exception_keeps_type_and_message(impl: Impl) -> None:
    exc = failure(impl, {"a": [1, 2, {"deep": (RefusesReduce(),)}]})
    assert type(exc) is ValueError
    assert str(exc).splitlines()[0] == "RefusesReduce does not pickle (user __reduce__)"
    assert notes(exc) == [
        "pickling failed at obj['a'][2]['deep'][0] (type: test_errors.RefusesReduce)"]


def test_root_itself_unpicklable(impl: Impl) -> None:
    exc = failure(impl, threading.Lock())
    assert notes(exc)[0] == "pickling failed at obj (type: _thread.lock)"


def test_deep_nesting_is_a_pickling_error_with_a_path(impl: Impl) -> None:
    deep: List[Any] = []
    cur = deep
    for _ in range(50_000):
        nxt: List[Any] = []
        cur.append(nxt)
        cur = nxt
    exc = failure(impl, {"config": deep})
    assert isinstance(exc, pickle.PicklingError)
    assert "too deeply nested" in str(exc).splitlines()[0]
    (note,) = notes(exc)
    assert note.startswith("nested too deeply to pickle along obj['config'][0][0][0][0][0]")
    assert "levels deep" in note
    assert "closure variable" not in note


def test_deep_nesting_through_closures_names_the_variables(impl: Impl) -> None:
    ns = dynamic("def link(nxt):\n    def step():\n        return nxt\n    return step\n")
    chain: Any = None
    for _ in range(50_000):
        chain = ns["link"](chain)
    exc = failure(impl, chain)
    assert isinstance(exc, pickle.PicklingError)
    (note,) = notes(exc)
    assert note.startswith(
        "nested too deeply to pickle along step.__closure__[0].cell_contents"
        ".__closure__[0].cell_contents"), note
    assert note.endswith("levels deep; closure variable nxt)"), note  # each name once


def test_failure_outside_the_object_graph_adds_no_note(impl: Impl) -> None:
    class BrokenFile:
        def write(self, data: bytes) -> None:
            raise OSError("disk full")

    with pytest.raises(OSError) as info:
        impl.Pickler(BrokenFile()).dump({"fine": [1, 2, 3]})
    assert notes(info.value) == []


def test_user_pickler_subclass_with_persistent_id(impl: Impl) -> None:
    lock = threading.Lock()

    class DbPickler(impl.Pickler):  # type: ignore[name-defined]
        def __init__(self, file: Any) -> None:  # a different signature than the base
            super().__init__(file, 4)

        def persistent_id(self, obj: Any) -> Any:
            return "db" if isinstance(obj, sqlite3.Connection) else None

    conn = sqlite3.connect(":memory:")
    with pytest.raises(TypeError) as info:
        DbPickler(io.BytesIO()).dump({"conn": conn, "locks": [lock]})
    # The connection is taken care of by persistent_id, so the search goes past it.
    assert notes(info.value)[0] == "pickling failed at obj['locks'][0] (type: _thread.lock)"


# --------------------------------------------------------------------------------------------
# Hints

def test_hints_for_known_kinds(impl: Impl, tmp_path: Any) -> None:
    async def job() -> None:
        return None

    coro = job()
    sock = socket.socket()
    writing = open(tmp_path / "out.txt", "w")
    reading = open(__file__, "rb")
    reading.close()  # open for reading, it would pickle as an in-memory copy
    try:
        cases = [
            (coro, "hint: coroutines hold a running frame"),
            (sock, "hint: sockets are connections of this process"),
            (writing, "hint: files open for writing cannot be pickled"),
            (reading, "hint: closed files, terminals and pipes cannot be pickled"),
            (sqlite3.connect(":memory:").cursor(), "hint: database connections"),
        ]
        for obj, hint in cases:
            exc = failure(impl, {"x": obj})
            assert notes(exc)[0].startswith("pickling failed at obj['x'] (type: ")
            assert notes(exc)[1].startswith(hint), (obj, notes(exc))
    finally:
        coro.close()
        sock.close()
        writing.close()
        reading.close()
    exc = failure(impl, {"x": RefusesReduce()})
    assert len(notes(exc)) == 1  # no hint for an unknown kind


# --------------------------------------------------------------------------------------------
# Robustness and presentation

def test_note_failure_never_raises() -> None:
    class Hostile:
        def __reduce_ex__(self, protocol: int) -> Any:
            raise RuntimeError("hostile")

        def __getattribute__(self, name: str) -> Any:
            if name in ("__class__", "__reduce_ex__"):
                return object.__getattribute__(self, name)
            raise RuntimeError("no attributes")

    exc = TypeError("original")
    for pickler_class in (int, object, type(None)):  # not picklers at all
        _errors.note_failure(exc, {"x": Hostile()}, pickler_class, 5)
    assert str(exc).splitlines()[0] == "original"
    assert gc.isenabled()  # the search pauses the collector and must restore it


def test_traceback_shows_the_note(impl: Impl) -> None:
    exc = failure(impl, {"k": threading.Lock()})
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    assert "pickling failed at obj['k'] (type: _thread.lock)" in text
    assert LOCK_HINT in text
    if sys.version_info < (3, 11):
        # No add_note: the note rides in the message, which every traceback prints.
        assert "pickling failed at obj['k']" in str(exc)


def test_notes_are_not_repeated() -> None:
    exc = TypeError("x")
    _errors.add_note(exc, "a")
    _errors.add_note(exc, "a")
    assert notes(exc) == ["a"]
    key_error = KeyError("k")
    _errors.add_note(key_error, "note")
    assert notes(key_error) == ["note"]
    assert str(key_error).startswith("'k'")


def test_traceback_of_main_function_in_fresh_interpreter(impl: Impl) -> None:
    out = run_python("""
        import threading, traceback, fastfnpickle
        LOCK = threading.Lock()
        def handler():
            return LOCK
        try:
            fastfnpickle.dumps(handler)
        except TypeError:
            traceback.print_exc(file=__import__("sys").stdout)
    """, env=impl.env())
    assert "pickling failed at handler.__globals__['LOCK'] (type: _thread.lock)" in out
    assert LOCK_HINT in out


# --------------------------------------------------------------------------------------------
# Loading a function made by another Python minor version

def other_tag() -> str:
    major, minor = sys.version_info[:2]
    for candidate in (minor - 1, minor + 1):
        tag = f"{major}.{candidate}"
        if len(tag) == len(CODE_TAG):
            return tag
    raise AssertionError("no same-length tag")


def foreign_pickle(impl: Impl) -> bytes:
    ns = dynamic("def scale(x):\n    return x * 2\n")
    data = impl.dumps(ns["scale"])
    encoded = CODE_TAG.encode()
    marker = b"\x8c" + bytes([len(encoded)]) + encoded  # SHORT_BINUNICODE tag
    assert data.count(marker) == 1
    return data.replace(marker, b"\x8c" + bytes([len(encoded)]) + other_tag().encode())


def test_function_from_another_minor_version_names_both(impl: Impl) -> None:
    data = foreign_pickle(impl)
    with pytest.raises(pickle.UnpicklingError) as info:
        pickle.loads(data)
    message = str(info.value)
    assert f"Python {other_tag()}" in message and f"Python {CODE_TAG}" in message
    out = run_python("""
        import pickle, sys
        try:
            pickle.loads(sys.stdin.buffer.read())
        except pickle.UnpicklingError as exc:
            print("refused:", exc)
    """, data, env=impl.env())
    assert out.startswith("refused:")
    assert f"Python {other_tag()}" in out and f"Python {CODE_TAG}" in out

"""``dumps()`` against a fresh ``Pickler``: the same bytes, whatever route ``dumps`` takes.

``dumps`` reuses one pickler per thread, and the compiled core writes the reconstructor of a
top-level function from a template instead of through the C pickler's ``save_global`` (see
``_dump_seeded`` in ``_core.pyx``). Neither may change a byte: these pin that for the cases
where the template route must step aside (pickles of more than one frame, functions pickled by
reference, errors, nested ``dumps``, threads) and check the pickles in a fresh interpreter.
"""

import functools
import gc
import io
import pickle
import sys
import textwrap
import threading
import types
import weakref
from typing import Any, Callable, Dict, List

import pytest
from conftest import PYTHON_IMPL as PYTHON
from conftest import Impl, load_in_subprocess

import fastfnpickle

BIG_LIST = list(range(40_000))        # more than one 64 KiB frame of opcodes
BIG_BYTES = b"x" * 200_000            # written outside the frames
MEDIUM = "y" * 60_000                 # about one frame: the cut lands near the template


def plain(impl: Impl, obj: Any) -> bytes:
    f = io.BytesIO()
    impl.Pickler(f).dump(obj)
    return f.getvalue()


def _module_level(x: int) -> int:
    return x * 2


@functools.singledispatch
def _dispatch(x: Any) -> str:
    return "any"


def corpus() -> Dict[str, Callable[..., Any]]:
    k = 3

    def recursive(n: int) -> int:
        return 1 if n <= 1 else n * recursive(n - 1)

    class Local:
        def method(self) -> int:
            return k

    return {
        "lambda": lambda x: x + 1,
        "closure": lambda x: x + k,
        "global refs": lambda: (pickle.HIGHEST_PROTOCOL, functools.reduce),
        "recursive": recursive,
        "set default": lambda s=frozenset({"b", "a", "c"}): sorted(s),
        "method of a local class": Local.method,
        "many frames": lambda: BIG_LIST[-1],
        "big bytes": lambda: len(BIG_BYTES),
        "about one frame": lambda: len(MEDIUM),
        "by reference": _module_level,
        "singledispatch": _dispatch,
        "builtin": len,
    }


@pytest.mark.parametrize("name", list(corpus()))
def test_dumps_writes_what_a_fresh_pickler_writes(impl: Impl, name: str) -> None:
    func = corpus()[name]
    expected = plain(impl, func)
    # Twice, and after a pickle of plain data: the reused pickler's memo starts clean each time.
    assert impl.core.dumps(func) == expected
    assert impl.core.dumps(func) == expected
    assert impl.core.dumps({"data": [1, 2, 3]}) == plain(impl, {"data": [1, 2, 3]})
    assert impl.core.dumps(func) == expected
    assert impl.core.dumps([func, func]) == plain(impl, [func, func])


def test_frame_cut_near_the_template(impl: Impl) -> None:
    # Closure contents from just under to just over one frame, so the plain route's first
    # frame ends on either side of where the template's bytes would move it.
    for size in range(65_440, 65_560, 7):
        text = "z" * size
        func = lambda: text  # noqa: E731
        assert impl.core.dumps(func) == plain(impl, func), size


def test_template_route_is_active_in_the_compiled_core() -> None:
    core = pytest.importorskip("fastfnpickle._core", reason="compiled core not built")
    assert core._seeded()


class _Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("not today")


def test_error_then_success(impl: Impl) -> None:
    bad = _Unpicklable()
    broken = lambda: bad  # noqa: E731
    with pytest.raises(TypeError, match="not today") as plain_error:
        plain(impl, broken)
    with pytest.raises(TypeError, match="not today") as dumps_error:
        impl.core.dumps(broken)
    assert getattr(dumps_error.value, "__notes__", None) == getattr(
        plain_error.value, "__notes__", None)
    fine = lambda: 1  # noqa: E731
    assert impl.core.dumps(fine) == plain(impl, fine)


class _DumpsInside:
    """An object whose reduce calls dumps() of a function, inside a dumps() of a function."""

    def __init__(self, func: Callable[[], int]) -> None:
        self.func = func

    def __reduce__(self) -> Any:
        return (bytes, (fastfnpickle.dumps(self.func),))


def test_nested_dumps(impl: Impl) -> None:
    inner = lambda: 41  # noqa: E731
    holder = _DumpsInside(inner)
    outer = lambda: holder  # noqa: E731
    data = impl.core.dumps(outer)
    assert data == plain(impl, outer)
    nested = fastfnpickle.loads(data)()
    assert fastfnpickle.loads(nested)() == 41


def _dump_a_closure_over_a_payload(impl: Impl) -> "weakref.ref[Any]":
    class Payload:
        pass

    payload = Payload()
    func = lambda: payload  # noqa: E731
    impl.core.dumps(func)
    return weakref.ref(payload)


def test_dumps_keeps_nothing_alive(impl: Impl) -> None:
    ref = _dump_a_closure_over_a_payload(impl)
    gc.collect()
    assert ref() is None


def test_threads_write_the_same_bytes(impl: Impl) -> None:
    funcs = list(corpus().values())
    expected = [plain(impl, f) for f in funcs]
    results: List[List[bytes]] = []
    errors: List[BaseException] = []

    def work() -> None:
        try:
            results.append([impl.core.dumps(f) for f in funcs * 5])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for got in results:
        assert got == expected * 5


def test_loaded_and_called_in_a_fresh_interpreter(impl: Impl) -> None:
    funcs = corpus()
    data = impl.core.dumps([funcs[name] for name in
                            ("lambda", "closure", "recursive", "many frames", "big bytes")])
    singles = [impl.core.dumps(funcs[name]) for name in ("closure", "many frames")]
    out = load_in_subprocess(data, """
        print(obj[0](1), obj[1](1), obj[2](5), obj[3](), obj[4]())
    """, impl)
    assert out.split() == ["2", "4", "120", "39999", "200000"]
    for single, expected in zip(singles, ("7", "39999"), strict=True):
        call = "print(obj(4))" if expected == "7" else "print(obj())"
        assert load_in_subprocess(single, call, impl).strip() == expected


def _plain_with_buffers(impl: Impl, obj: Any, callback: Any) -> bytes:
    f = io.BytesIO()
    impl.Pickler(f, 5, buffer_callback=callback).dump(obj)
    return f.getvalue()


def test_buffer_callback_through_the_reused_pickler(impl: Impl) -> None:
    np = pytest.importorskip("numpy", reason="numpy (test extra) is not installed")
    arr = np.arange(100_000, dtype=np.float64)
    func = lambda: float(arr.sum())  # noqa: E731

    ours: List[pickle.PickleBuffer] = []
    theirs: List[pickle.PickleBuffer] = []
    data = impl.core.dumps(func, buffer_callback=ours.append)
    assert data == _plain_with_buffers(impl, func, theirs.append)
    assert len(ours) == len(theirs) == 1
    assert bytes(ours[0].raw()) == bytes(theirs[0].raw())
    assert fastfnpickle.loads(data, buffers=ours)() == float(arr.sum())

    # The next call has no callback: in band again, as a pickler without one writes it.
    assert impl.core.dumps(func) == plain(impl, func)
    # A callback answering "in band" for every buffer.
    assert impl.core.dumps(func, buffer_callback=lambda b: True) == plain(impl, func)

    class Refused(Exception):
        pass

    def refuse(buffer: Any) -> None:
        raise Refused("no buffers here")

    with pytest.raises(Refused):
        impl.core.dumps(func, buffer_callback=refuse)
    assert impl.core.dumps(func) == plain(impl, func)
    out = load_in_subprocess(impl.core.dumps(func), "print(obj())", impl)
    assert float(out) == float(arr.sum())


@pytest.mark.parametrize("limits", [(1, 1 << 20), (3, 1 << 20), (512, 64)])
def test_code_cache_eviction(limits: Any) -> None:
    # The compiled core's code cache drops its oldest entries when full (in entries or bytes):
    # whatever it holds, every pickle is the same.
    core = pytest.importorskip("fastfnpickle._core", reason="compiled core not built")
    saved = core._code_cache_limits()
    try:
        core._code_cache_limits(*limits)
        funcs = [eval(f"lambda x: x + {i}") for i in range(10)]  # noqa: S307
        first = [core.dumps(f) for f in funcs]
        again = [core.dumps(f) for f in reversed(funcs)][::-1]
        assert first == again == [plain(Impl("cython", core), f) for f in funcs]
        assert [fastfnpickle.loads(d)(1) for d in first] == [i + 1 for i in range(10)]
    finally:
        core._code_cache_limits(*saved)


def test_code_cache_entries_ride_on_the_code_object() -> None:
    # An entry lives in the code object's co_extra slot while the code is in the cache's ring;
    # evicted, the slot is emptied, the entry freed and the code object no longer held.
    core = pytest.importorskip("fastfnpickle._core", reason="compiled core not built")
    saved = core._code_cache_limits()
    try:
        core._code_cache_limits(2)
        f = eval("lambda x: x + 100", {})  # noqa: S307  (a code object no other test has seen)
        code = f.__code__
        info = core.code_info(code)
        # Read before an assert statement keeps a temporary; the evals get globals of their own
        # (eval in a function otherwise keeps a dict of its locals, info included).
        held = sys.getrefcount(info)
        again = core.code_info(code)
        assert core._code_cache_holds(code) and again is info
        del again
        for i in range(3):
            core.dumps(eval(f"lambda x: x + {200 + i}", {}))  # noqa: S307
        assert not core._code_cache_holds(code)
        assert sys.getrefcount(info) == held - 1  # the slot's reference went with the entry
        assert core.code_info(code) is not info   # made again, equal
        assert core.code_info(code).data == info.data
        ref = weakref.ref(code)
        for i in range(3):
            core.dumps(eval(f"lambda x: x + {300 + i}", {}))  # noqa: S307
        del f, code
        gc.collect()
        assert ref() is None
    finally:
        core._code_cache_limits(*saved)


def test_registry_changes_between_dumps_calls(impl: Impl) -> None:
    # The reused pickler's registry is set again only when it changed: registering and
    # unregistering between two dumps() calls must each take effect on the next one.
    mod = types.ModuleType("ffp_reuse_registry_mod")
    exec("def triple(x):\n    return 3 * x\n", mod.__dict__)  # noqa: S102
    sys.modules[mod.__name__] = mod
    try:
        func = mod.triple
        by_reference = impl.core.dumps(func)
        assert by_reference == plain(impl, func) and len(by_reference) < 80
        fastfnpickle.register_pickle_by_value(mod)
        try:
            by_value = impl.core.dumps(func)
            assert by_value == plain(impl, func) and by_value != by_reference
        finally:
            fastfnpickle.unregister_pickle_by_value(mod)
        assert impl.core.dumps(func) == by_reference
    finally:
        del sys.modules[mod.__name__]
    # Loaded where the module does not exist: only the by-value pickle works there.
    assert load_in_subprocess(by_value, "print(obj(5))", impl).strip() == "15"


def test_globals_shared_after_the_token_cache_fills(impl: Impl) -> None:
    # The compiled core caches the token standing for a module's globals across pickles, by
    # the dict's address. When that cache filled, it was emptied: the pickle that filled it got
    # two tokens for one module, and its functions loaded with two globals dicts (a counter
    # bumped by one was not seen by the other). Tokens a pickle in progress wrote must stay.
    shared: Dict[str, Any] = {"__name__": "ffp_token_module"}
    exec(textwrap.dedent("""
        counter = 0
        def bump():
            global counter
            counter += 1
            return counter
        def read():
            return counter
    """), shared)
    pickles = []
    for i in range(1_300):  # more distinct globals dicts than the cache holds
        other: Dict[str, Any] = {"__name__": f"ffp_token_other_{i}"}
        exec("def other():\n    return 1\n", other)  # noqa: S102
        data = impl.dumps([shared["bump"], other["other"], shared["read"]])
        bump, _, read = pickle.loads(data)
        assert bump.__globals__ is read.__globals__, f"pickle {i}: one module, two globals"
        pickles.append(data)
    out = load_in_subprocess(pickle.dumps(pickles[1_000:]), """
        import pickle
        results = []
        for data in obj:
            bump, _, read = pickle.loads(data)
            bump()
            results.append(read())
        print(sorted(set(results)))
    """, impl)
    assert out.strip() == "[1]"


def test_code_written_once_when_the_cache_drops_it_mid_pickle(impl: Impl) -> None:
    # A code object met twice in one pickle is written once (the memo shares its bytes), even
    # when the code cache is too small to hold every code object of the pickle: the compiled
    # core keeps the entries a memo uses, the twin remembers what the pickle used. Same bytes
    # from both twins and from a fresh pickler.
    core = pytest.importorskip("fastfnpickle._core", reason="compiled core not built")
    saved = core._code_cache_limits()
    try:
        core._code_cache_limits(2, 1 << 20)
        f = eval("lambda x: x + 4001", {})  # noqa: S307
        impl.core.dumps(f)  # cached first: the oldest entry when the pickle below starts
        others = [eval(f"lambda x: x + {5000 + i}", {}) for i in range(6)]  # noqa: S307
        batch = [f, *others, f]
        data = impl.core.dumps(batch)
        assert core._code_cache_overflow() == 0  # emptied once the pickle ended
        assert data.count(core.code_info(f.__code__).data[4:]) == 1
        assert data == plain(impl, batch) == plain(PYTHON, batch)
        loaded = pickle.loads(data)
        assert [g(1) for g in loaded] == [4002, *(5001 + i for i in range(6)), 4002]
        out = load_in_subprocess(data, "print([g(1) for g in obj])", impl)
        assert out.strip() == str([4002, *(5001 + i for i in range(6)), 4002])
    finally:
        core._code_cache_limits(*saved)

"""Scale: a million closures, a 100 MB array out of band without a copy, too-deep nesting.

Peak memory is measured in fresh interpreters with ``resource.getrusage`` (``ru_maxrss`` is a
high-water mark, so each measurement gets its own process).
"""

import pickle
import sys
from typing import Any, Callable, List

import pytest
from conftest import run_python

ARRAY_MB = 100


def _adder(k: int) -> Callable[[int], int]:
    def add(x: int) -> int:
        return x + k
    return add


@pytest.mark.slow
def test_a_million_small_closures(impl: Any, tmp_path: Any) -> None:
    n = 1_000_000
    funcs = [_adder(k) for k in range(n)]
    data = impl.dumps(funcs)
    # One code object and one globals dict for all of them: the memo must share them.
    assert len(data) < 120 * n  # about 57 bytes each today; unshared code would be ~500
    del funcs
    path = tmp_path / "closures.pkl"
    path.write_bytes(data)
    out = run_python(f"""
        import pickle
        with open({str(path)!r}, "rb") as f:
            fs = pickle.load(f)
        assert len(fs) == {n}
        assert fs[0](1) == 1 and fs[-1](1) == {n} and fs[777_777](1) == 777_778
        assert fs[1].__globals__ is fs[2].__globals__ and fs[5].__code__ is fs[6].__code__
        print("ok")
        """, env=impl.env())
    assert out.strip() == "ok"


# The child pickles a closure over a 100 MB array out of band, checks the PickleBuffer is a
# view of the array's own memory, loads it back from that buffer and checks the result shares
# the memory, and reports the peak RSS growth over the baseline taken before the array existed.
PICKLE_OUT_OF_BAND = """
import resource, sys, pickle
import numpy as np
import fastfnpickle
from fastfnpickle import _impl

def kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

size = int(sys.argv[1])
baseline = kb()
arr = np.ones(size, dtype=np.uint8)  # ones, not zeros: every page is really touched

def make(a):
    def total():
        return int(a[:1000].sum()) + a.size
    return total

fn = make(arr)
buffers = []
data = _impl.core.dumps(fn, 5, buffers.append)
assert len(data) < 100_000, len(data)
assert len(buffers) == 1
raw = buffers[0].raw()
assert raw.nbytes == arr.nbytes
view = np.frombuffer(raw, dtype=np.uint8)
assert view.ctypes.data == arr.ctypes.data, "PickleBuffer is not the array's memory"
loaded = pickle.loads(data, buffers=buffers)
cell = loaded.__closure__[0].cell_contents
assert np.shares_memory(cell, arr), "loaded array copied the buffer"
assert loaded() == 1000 + size
peak = kb()
with open(sys.argv[2], "wb") as f:
    f.write(data)
with open(sys.argv[3], "wb") as f:
    f.write(raw)
print(baseline, peak)
"""

# A fresh interpreter loads the pickle with the buffer read into one bytearray: the array
# must be built on that bytearray, not on a copy.
LOAD_OUT_OF_BAND = """
import resource, sys, pickle
import numpy as np
import fastfnpickle

def kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

size = int(sys.argv[1])
baseline = kb()
with open(sys.argv[2], "rb") as f:
    data = f.read()
buf = bytearray(size)
with open(sys.argv[3], "rb") as f:
    assert f.readinto(buf) == size
fn = pickle.loads(data, buffers=[buf])
cell = fn.__closure__[0].cell_contents
assert np.shares_memory(cell, np.frombuffer(buf, dtype=np.uint8)), "load copied the buffer"
assert fn() == 1000 + size
print(baseline, kb())
"""


@pytest.mark.slow
def test_large_array_in_closure_out_of_band_is_not_copied(impl: Any, tmp_path: Any) -> None:
    pytest.importorskip("numpy")
    size = ARRAY_MB * 1024 * 1024
    pkl, raw = tmp_path / "fn.pkl", tmp_path / "buf.raw"
    base, peak = map(int, run_python(PICKLE_OUT_OF_BAND, env=impl.env(),
                                     args=(str(size), str(pkl), str(raw))).split())
    growth = (peak - base) * 1024
    # One copy of the array is the array itself; a copy anywhere would double it.
    assert growth < 1.5 * size, f"pickling grew peak RSS by {growth / 2**20:.0f} MB"
    base, peak = map(int, run_python(LOAD_OUT_OF_BAND, env=impl.env(),
                                     args=(str(size), str(pkl), str(raw))).split())
    growth = (peak - base) * 1024
    assert growth < 1.5 * size, f"loading grew peak RSS by {growth / 2**20:.0f} MB"


def test_out_of_band_buffer_is_the_arrays_memory_in_process(impl: Any) -> None:
    np = pytest.importorskip("numpy")
    arr = np.arange(1 << 16, dtype=np.int64)

    def make(a: Any) -> Callable[[], int]:
        return lambda: int(a.sum())

    buffers: List[pickle.PickleBuffer] = []
    data = impl.dumps(make(arr), protocol=5, buffer_callback=buffers.append)
    assert len(buffers) == 1 and len(data) < arr.nbytes // 10
    view = np.frombuffer(buffers[0].raw(), dtype=np.int64)
    assert view.ctypes.data == arr.ctypes.data
    fn = pickle.loads(data, buffers=buffers)
    assert np.shares_memory(fn.__closure__[0].cell_contents, arr)
    assert fn() == int(arr.sum())
    # Without buffers the pickle refuses to load instead of loading something else.
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(data)


# --------------------------------------------------------------------------------------------
# Recursion depth

def _deep_list(depth: int) -> Any:
    v: Any = []
    for _ in range(depth):
        v = [v]
    return v


def _wrap(inner: Callable[[], Any]) -> Callable[[], Any]:
    def call() -> Any:
        return inner()
    return call


def _deep_closures(depth: int) -> Callable[[], Any]:
    f: Callable[[], Any] = lambda: 0
    for _ in range(depth):
        f = _wrap(f)
    return f


# Deeper than any recursion limit of 3.10-3.15 (Python- or C-level).
TOO_DEEP = 50_000


@pytest.mark.parametrize("make", [_deep_list, _deep_closures], ids=["lists", "closures"])
def test_too_deep_nesting_raises_picklingerror(impl: Any, make: Callable[[int], Any]) -> None:
    obj = make(TOO_DEEP)
    with pytest.raises(pickle.PicklingError, match="deep"):
        impl.dumps(obj)
    with pytest.raises(pickle.PicklingError, match="deep"):
        impl.core.dumps(obj)
    # The pickler and the thread are usable afterwards.
    assert pickle.loads(impl.dumps(_adder(3)))(1) == 4
    assert pickle.loads(impl.core.dumps(_adder(4)))(1) == 5


def test_too_deep_nesting_raises_picklingerror_in_a_fresh_interpreter(impl: Any) -> None:
    out = run_python("""
        import pickle, sys
        import fastfnpickle
        v = []
        for _ in range(50_000):
            v = [v]
        def outer():
            data = v
            return lambda: data
        try:
            fastfnpickle.dumps(outer())
        except pickle.PicklingError as exc:
            print("PicklingError")
        f = pickle.loads(fastfnpickle.dumps(lambda: 5))
        print(f())
        """, env=impl.env())
    assert out.split() == ["PicklingError", "5"]


def test_nesting_within_the_limit_still_pickles(impl: Any) -> None:
    obj = _deep_list(sys.getrecursionlimit() // 10)
    data = impl.dumps(obj)
    out = run_python("""
        import pickle, sys
        v = pickle.loads(sys.stdin.buffer.read())
        n = 0
        while v:
            v = v[0]
            n += 1
        print(n)
        """, data, env=impl.env())
    assert int(out) == sys.getrecursionlimit() // 10

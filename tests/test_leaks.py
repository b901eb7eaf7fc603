"""No leaks: pickling and loading 100,000 objects leaves memory flat after a warm-up.

Each run is a child interpreter with one implementation active. It pickles and loads a mix of
new objects in batches, and measures at 20k and 100k iterations, after a full collection:

- resident memory (``/proc/self/statm``): catches leaks of any kind, including C buffers;
- ``sys.getallocatedblocks()``: the objects the interpreter's allocator holds, which a reference
  leak of even one small object per iteration moves by tens of thousands.

What may legitimately stay: the class registry is weak (classes die with their last user); the
load side keeps at most 512 code objects in its cache; per-code caches on the dump side are weak.
So the slack below covers the load cache at its fullest plus allocator noise, and no more:
a leak of 100 bytes per iteration is 8 MB over the 80k measured iterations (see
``test_the_measure_sees_a_100_byte_leak``, which checks that with an injected leak).

Objects are made with the same names every time (only constants differ): identifiers are
interned, and on 3.12 interned strings are immortal, which would look like a leak that is not
fastfnpickle's.
"""

import json
import subprocess
import sys
from typing import Any, Dict

import pytest
from conftest import PYTHON_IMPL, Impl

ITERATIONS = 100_000
WARM_UP = 20_000
BATCH = 1000
RSS_SLACK = 4 * 2**20  # bytes
BLOCK_SLACK = 8000  # allocator blocks; the 512-entry code cache at its fullest is ~5000

CHILD = r'''
import enum, gc, json, os, pickle, sys
import fastfnpickle

assert fastfnpickle.IMPLEMENTATION == sys.argv[1], fastfnpickle.IMPLEMENTATION
mode, iterations, warm_up, batch, leak_bytes = sys.argv[2], *map(int, sys.argv[3:7])
PAGE = os.sysconf("SC_PAGE_SIZE")
kept = []  # only used when a leak is injected


def measure():
    gc.collect()
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * PAGE
    return {"rss": rss, "blocks": sys.getallocatedblocks()}


def distinct_function(i):
    # A new code object each time (its constant differs); same names.
    ns = {}
    exec(compile(f"def f(x):\n    return x + {i}\n", "<generated>", "exec"), ns)
    return ns["f"]


def closure(i):
    def add(x):
        return x + i
    return add


def dynamic_class(i):
    class Dyn:
        base = i

        def get(self):
            return self.base

        @classmethod
        def kind(cls):
            return cls.__name__
    return Dyn


def make(i):
    """One object of the mix, and how to check what loads back."""
    kind = i % 5
    if kind == 0:
        return distinct_function(i), lambda f: f(1) == i + 1
    if kind == 1:
        return closure(i), lambda f: f(1) == i + 1
    if kind == 2:
        return dynamic_class(i), lambda c: c().get() == i and c.kind() == "Dyn"
    if kind == 3:
        return dynamic_class(i)(), lambda o: o.get() == i
    return enum.Enum("Color", ["RED", "GREEN"]), lambda e: e.GREEN.value == 2


def run_mix(start, stop):
    # Pickled in a batch, originals dropped and collected, then loaded: classes are rebuilt
    # (while the original lives, loading would hand it back from the registry).
    for first in range(start, stop, batch):
        items = [make(i) for i in range(first, min(first + batch, stop))]
        blobs = [(fastfnpickle.dumps(obj), check) for obj, check in items]
        del items
        gc.collect()
        for n, (data, check) in enumerate(blobs):
            if not check(pickle.loads(data)):
                raise SystemExit(f"iteration {first + n}: loaded object does not work")
            if leak_bytes:
                kept.append(bytes(leak_bytes - 33))  # 33: a bytes object's own header
        del blobs


def run_same(start, stop):
    # The same function through the reusable per-thread pickler, loaded each time.
    k = 7

    def same(x):
        return x * k
    for i in range(start, stop):
        if pickle.loads(fastfnpickle.dumps(same))(i) != i * 7:
            raise SystemExit(f"iteration {i}: loaded function does not work")
        if leak_bytes:
            kept.append(bytes(leak_bytes - 33))


run = run_mix if mode == "mix" else run_same
run(0, warm_up)
after_warm_up = measure()
run(warm_up, iterations)
at_end = measure()
print(json.dumps({"warm_up": after_warm_up, "end": at_end}))
'''


def _measure(impl: Impl, mode: str, leak_bytes: int = 0) -> Dict[str, Dict[str, int]]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, impl.name, mode, str(ITERATIONS), str(WARM_UP),
         str(BATCH), str(leak_bytes)],
        capture_output=True, env=impl.env(), timeout=300,
    )
    assert proc.returncode == 0, (
        f"[{impl.name}] child failed ({proc.returncode}):\n{proc.stderr.decode()[-3000:]}")
    return json.loads(proc.stdout)


def _growth(result: Dict[str, Dict[str, int]]) -> Dict[str, int]:
    return {k: result["end"][k] - result["warm_up"][k] for k in ("rss", "blocks")}


def _assert_flat(impl: Impl, mode: str, result: Dict[str, Dict[str, Any]]) -> None:
    growth = _growth(result)
    per_iteration = growth["rss"] / (ITERATIONS - WARM_UP)
    report = (f"[{impl.name}, {mode}] from {WARM_UP} to {ITERATIONS} iterations: resident "
              f"memory {growth['rss'] / 2**20:+.2f} MB ({per_iteration:+.1f} B/iteration), "
              f"allocated blocks {growth['blocks']:+d}; {result}")
    assert growth["rss"] < RSS_SLACK, report
    assert growth["blocks"] < BLOCK_SLACK, report


@pytest.mark.slow
def test_no_leak_over_100k_new_functions_closures_classes_instances_enums(impl: Impl) -> None:
    _assert_flat(impl, "mix", _measure(impl, "mix"))


@pytest.mark.slow
def test_no_leak_reusing_one_function_through_dumps(impl: Impl) -> None:
    _assert_flat(impl, "same", _measure(impl, "same"))


@pytest.mark.slow
def test_the_measure_sees_a_100_byte_leak() -> None:
    """The slack is tight enough: 100 bytes kept per iteration fails both limits."""
    growth = _growth(_measure(PYTHON_IMPL, "same", leak_bytes=100))
    assert growth["rss"] > RSS_SLACK, growth
    assert growth["blocks"] > BLOCK_SLACK, growth

"""multiprocessing and concurrent.futures: ProcessPoolExecutor, by_value, enable_multiprocessing.

Pools run for real under ``spawn`` and ``forkserver`` in a fresh interpreter per check script
(the scripts are ``__main__``, so their classes and functions are genuinely ``__main__`` ones),
with the implementation chosen by the ``impl`` fixture active in the parent and the workers.
"""

import base64
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Dict, Sequence

import pytest
from conftest import load_in_subprocess, run_python

import fastfnpickle
from fastfnpickle import futures

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
METHODS = ["spawn", "forkserver"]


def run_script(path: Path, args: Sequence[str], env: Dict[str, str]) -> str:
    """Run a script file as ``__main__`` (as a user would); fail with its stderr if it fails."""
    proc = subprocess.run([sys.executable, str(path), *args], capture_output=True, env=env,
                          timeout=240)
    if proc.returncode != 0:
        pytest.fail(f"{path.name} failed ({proc.returncode}):\n{proc.stderr.decode()}")
    return proc.stdout.decode()


# --------------------------------------------------------------------------------------------
# The example, as documented

@pytest.mark.parametrize("method", METHODS)
def test_example_process_pool(impl, method):
    out = run_script(EXAMPLES / "process_pool.py", [method], impl.env())
    assert out.strip() == f"ok {method}"


# --------------------------------------------------------------------------------------------
# ProcessPoolExecutor

EXECUTOR_CHECKS = r"""
import multiprocessing, os, sys, threading
from concurrent.futures.process import BrokenProcessPool
import fastfnpickle
from fastfnpickle.futures import ProcessPoolExecutor

method, implementation = sys.argv[1], sys.argv[2]
assert fastfnpickle.IMPLEMENTATION == implementation, fastfnpickle.IMPLEMENTATION

class Point:
    def __init__(self, x):
        self.x = x

def make_error_class():
    class LocalError(Exception):   # found by no name: the stdlib cannot pickle it
        pass
    return LocalError

LocalError = make_error_class()

def fail_local(k):
    raise LocalError(f"bad {k}")

def fail_with_lambda():
    raise ValueError("carries a function", lambda: 42)

context = multiprocessing.get_context(method)
k = 5
shared = [1, 2, 3]

with ProcessPoolExecutor(2, mp_context=context,
                         initializer=lambda v: os.environ.__setitem__("FFP_INIT", str(v)),
                         initargs=(k,)) as pool:
    out = pool.submit(lambda p, q=0: Point(p.x * k + q), Point(2), q=1).result()
    assert type(out) is Point and out.x == 11, (type(out), vars(out))

    got = list(pool.map(lambda a, b: a * b + k, range(10), range(10), chunksize=3))
    assert got == [a * a + k for a in range(10)], got

    times_k = pool.submit(lambda: (lambda y: y * k)).result()
    assert times_k(2) == 10

    assert pool.submit(lambda: os.environ.get("FFP_INIT")).result() == "5"
    assert pool.submit(lambda lst: lst is shared, shared).result() is True
    assert pool.submit(lambda: os.getpid()).result() != os.getpid()

    try:
        pool.submit(lambda: 1 / 0).result()
    except ZeroDivisionError as exc:
        assert str(exc) == "division by zero"
    else:
        raise AssertionError("no ZeroDivisionError")

    try:
        pool.submit(fail_local, k).result()
    except LocalError as exc:
        assert type(exc) is LocalError and str(exc) == "bad 5", repr(exc)
    else:
        raise AssertionError("no LocalError")

    try:
        pool.submit(fail_with_lambda).result()
    except ValueError as exc:
        assert exc.args[0] == "carries a function" and exc.args[1]() == 42
    else:
        raise AssertionError("no ValueError")

    # An argument nothing can pickle fails its own future; the pool keeps working.
    try:
        pool.submit(len, threading.Lock()).result()
    except TypeError as exc:
        assert "lock" in str(exc), str(exc)
    else:
        raise AssertionError("a lock was pickled")
    assert pool.submit(lambda: k + 1).result() == 6

# A worker that dies breaks the pool (the timeout turns a hang into a failure).
with ProcessPoolExecutor(1, mp_context=context) as pool:
    try:
        pool.submit(os._exit, 3).result(timeout=120)
    except BrokenProcessPool:
        pass
    else:
        raise AssertionError("no BrokenProcessPool")
print("ok")
"""


@pytest.mark.parametrize("method", METHODS)
def test_executor(impl, method):
    out = run_python(EXECUTOR_CHECKS, env=impl.env(), args=(method, impl.name))
    assert out.strip() == "ok"


def test_executor_is_the_stdlib_executor():
    import concurrent.futures
    import inspect

    assert issubclass(futures.ProcessPoolExecutor, concurrent.futures.ProcessPoolExecutor)
    ours = inspect.signature(futures.ProcessPoolExecutor.submit)
    theirs = inspect.signature(concurrent.futures.ProcessPoolExecutor.submit)
    assert list(ours.parameters) == list(theirs.parameters)


def test_top_level_names():
    # The issue asks for fastfnpickle.ProcessPoolExecutor; the package re-exports lazily.
    for name in ("ProcessPoolExecutor", "by_value", "enable_multiprocessing",
                 "disable_multiprocessing"):
        assert getattr(fastfnpickle, name) is getattr(futures, name), name


# --------------------------------------------------------------------------------------------
# by_value

def test_by_value_in_process():
    factor = 3

    def scale(x: int) -> int:
        """Multiply by the factor."""
        return x * factor

    wrapped = futures.by_value(scale)
    assert wrapped(2) == 6
    assert futures.by_value(wrapped) is wrapped
    assert wrapped.__name__ == "scale" and wrapped.__doc__ == "Multiply by the factor."
    assert wrapped.__wrapped__ is scale
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        data = pickle.dumps(wrapped, protocol)
        assert data == pickle.dumps(wrapped, protocol)  # deterministic
        back = pickle.loads(data)
        assert type(back) is futures.ByValue and back(5) == 15
        assert pickle.loads(pickle.dumps(back, protocol))(1) == 3  # passes on further
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(scale)  # what the wrapper is for
    with pytest.raises(TypeError, match="callable"):
        futures.by_value(42)  # type: ignore[arg-type]


BY_VALUE_PRODUCER = r"""
import base64, pickle, sys
from multiprocessing.reduction import ForkingPickler
import fastfnpickle
from fastfnpickle.futures import by_value

assert fastfnpickle.IMPLEMENTATION == sys.argv[1]

class Greeter:                     # __main__ class, reached through a closure
    def greet(self, name):
        return "hello " + name

def make():
    greeter = Greeter()
    return lambda name: greeter.greet(name)

items = [by_value(make()), by_value(lambda x: x * 2), by_value(Greeter().greet)]
print(base64.b64encode(pickle.dumps(items, 2)).decode())
print(base64.b64encode(bytes(ForkingPickler.dumps(items))).decode())
"""

BY_VALUE_CHECK = """
from fastfnpickle.futures import ByValue
assert all(type(f) is ByValue for f in obj)
assert obj[0]("ada") == "hello ada"
assert obj[1](21) == 42
assert obj[2]("bob") == "hello bob"
print("ok")
"""


def test_by_value_loads_in_fresh_process(impl):
    out = run_python(BY_VALUE_PRODUCER, env=impl.env(), args=(impl.name,))
    for line in out.split():
        assert load_in_subprocess(base64.b64decode(line), BY_VALUE_CHECK, impl).strip() == "ok"


# --------------------------------------------------------------------------------------------
# enable_multiprocessing

ENABLE_CHECKS = r"""
import multiprocessing, pickle, sys
from multiprocessing import reduction, spawn
import fastfnpickle
import fastfnpickle.futures as ff

method, implementation = sys.argv[1], sys.argv[2]
assert fastfnpickle.IMPLEMENTATION == implementation
context = multiprocessing.get_context(method)
originals = (reduction.ForkingPickler.__dict__["dumps"], reduction.dump,
             spawn.get_preparation_data)
assert not ff.multiprocessing_enabled()
k = 4

def stdlib_refuses():
    try:
        with context.Pool(1) as pool:
            pool.map(lambda x: x, [1])
    except (pickle.PicklingError, AttributeError, TypeError):
        return True
    return False

assert stdlib_refuses()

class Special:                     # a __main__ class with a registered multiprocessing reducer
    def __init__(self, v):
        self.v = v

reduction.ForkingPickler.register(Special, lambda s: (Special, (s.v + 1,)))

ff.enable_multiprocessing()
ff.enable_multiprocessing()        # idempotent
assert ff.multiprocessing_enabled()
with context.Pool(2) as pool:
    adders = pool.map(lambda i: (lambda x: x + i + k), range(3))   # closures come back
    assert [add(0) for add in adders] == [4, 5, 6]
    assert pool.apply(ff.multiprocessing_enabled) is True           # the worker switched on
    assert pool.apply(lambda s: (type(s).__name__, s.v), (Special(1),)) == ("Special", 2)

queue = context.Queue()
proc = context.Process(target=lambda q: q.put(lambda: k * 10), args=(queue,))
proc.start()
assert queue.get(timeout=120)() == 40
proc.join(120)
assert proc.exitcode == 0

ff.disable_multiprocessing()
assert not ff.multiprocessing_enabled()
assert (reduction.ForkingPickler.__dict__["dumps"], reduction.dump,
        spawn.get_preparation_data) == originals
assert stdlib_refuses()
print("ok")
"""


@pytest.mark.parametrize("method", METHODS)
def test_enable_multiprocessing(impl, method):
    out = run_python(ENABLE_CHECKS, env=impl.env(), args=(method, impl.name))
    assert out.strip() == "ok"


def test_importing_changes_nothing():
    out = run_python("""
        import sys
        import concurrent.futures.process
        from multiprocessing import reduction, spawn
        before = (reduction.ForkingPickler.__dict__["dumps"], reduction.dump,
                  spawn.get_preparation_data, concurrent.futures.ProcessPoolExecutor)
        import fastfnpickle, fastfnpickle.futures, fastfnpickle.distributed
        after = (reduction.ForkingPickler.__dict__["dumps"], reduction.dump,
                 spawn.get_preparation_data, concurrent.futures.ProcessPoolExecutor)
        assert before == after
        assert not fastfnpickle.futures.multiprocessing_enabled()
        assert "distributed" not in sys.modules and "torch" not in sys.modules
        print("ok")
    """)
    assert out.strip() == "ok"


def test_docs_embed_the_examples():
    # The README shows the example scripts verbatim, so what users copy is what runs.
    docs = (EXAMPLES.parent / "README.md").read_text()
    scripts = sorted(EXAMPLES.glob("*.py"))
    assert len(scripts) == 5
    for script in scripts:
        assert script.read_text().rstrip("\n") in docs, script.name

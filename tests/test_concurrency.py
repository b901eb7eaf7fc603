"""Eight threads pickling and loading at once: same bytes as one thread, never an exception.

The shared state under contention: the per-code-object cache, the per-thread pickler of
``dumps``, the class registry (content-derived ids, assigned on first pickle), the TypeVar
registry, and the by-value module registry. Runs start in fresh interpreters so every cache
and registry is cold when the threads start.
"""

import sys
import threading
from typing import Any, Dict, List

import pytest
from conftest import run_python

THREADS = 8
ROUNDS = 25

# Defined in __main__ of the child, so everything pickles by value. Objects are rebuilt by the
# same code in every child, so their content (and the content-derived class ids) agree.
OBJECTS = r"""
import enum, pickle, sys, threading, typing

def make_closure(k):
    base = [k, str(k)]
    def f(x, scale=k):
        return (x * scale, base[1])
    return f

def make_class(k):
    class Thing:
        tag = k
        # Many attributes ahead of the methods: a longer window for a thread that gets the
        # class back from the registry before another thread finished filling it in.
        for _i in range(40):
            locals()["a%d" % _i] = _i
        del _i
        def __init__(self, v):
            self.v = v
        def get(self):
            return (self.v, self.tag)
        @classmethod
        def build(cls):
            return cls(k)
    Thing.__qualname__ = "Thing%d" % k
    Thing.__name__ = "Thing%d" % k
    return Thing

class SharedEnum(enum.Enum):
    A = 1
    B = 2

T = typing.TypeVar("T")
shared_lambda = lambda x: x + 1000

def shared_fn(x):
    return [shared_lambda(x), SharedEnum.B.value]

SharedClass = make_class(-1)
SHARED = [shared_fn, shared_lambda, SharedClass, SharedEnum, T, SharedClass(3), [shared_fn] * 3]

def distinct(t):
    # Thread t's own functions and classes; content differs between threads.
    closures = [make_closure(100 * t + i) for i in range(3)]
    classes = [make_class(100 * t + i) for i in range(2)]
    return closures + classes + [classes[0](t)]

def check_loaded(objs, t):
    f = objs[0]
    assert f(2) == (2 * (100 * t), str(100 * t)), f(2)
    cls = objs[3]
    assert cls.build().get() == (100 * t, 100 * t)
    assert objs[5].get() == (t, 100 * t)
"""

PICKLE_ALL = OBJECTS + r"""
import fastfnpickle
from fastfnpickle import _impl

MODE = sys.argv[1]
THREADS, ROUNDS = int(sys.argv[2]), int(sys.argv[3])
dumps_fast = _impl.core.dumps
Pickler = _impl.core.Pickler

def dumps_pickler(obj):
    import io
    f = io.BytesIO()
    Pickler(f).dump(obj)
    return f.getvalue()

def work(t, results, errors, barrier):
    try:
        mine = distinct(t)
        if barrier is not None:
            barrier.wait()
        out = []
        for r in range(ROUNDS):
            dumps = dumps_fast if (r + t) % 2 else dumps_pickler
            shared = [dumps(o) for o in SHARED]
            own = [dumps(o) for o in mine]
            whole = dumps(mine)
            check_loaded(pickle.loads(whole), t)
            assert pickle.loads(shared[0])(1) == [1001, 2]
            assert pickle.loads(shared[3]) is SharedEnum
            out.append((shared, own, whole))
        first = out[0]
        assert all(o == first for o in out), "bytes changed between rounds on one thread"
        results[t] = first
    except BaseException as exc:
        import traceback
        errors.append("thread %d: %s" % (t, traceback.format_exc()))

results = {}
errors = []
if MODE == "single":
    for t in range(THREADS):
        work(t, results, errors, None)
else:
    sys.setswitchinterval(1e-6)  # as many thread switches as possible inside the hot paths
    barrier = threading.Barrier(THREADS)
    threads = [threading.Thread(target=work, args=(t, results, errors, barrier))
               for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
extra = []
if MODE == "single":
    dumps_fast(distinct(0))  # warm up, as the threads did
    extra = [dumps_fast(distinct(t)) for t in range(THREADS, 5 * THREADS)]
sys.stdout.buffer.write(pickle.dumps((results, errors, extra), protocol=4))
"""

LOAD_ALL = OBJECTS.split("def make_closure")[0] + r"""
import pickle, sys, threading
import fastfnpickle

payloads = pickle.loads(sys.stdin.buffer.read())
sys.setswitchinterval(1e-6)
errors = []
for name, data in payloads:
    got = [None] * 8
    barrier = threading.Barrier(8)
    def load(i):
        try:
            barrier.wait()
            obj = pickle.loads(data)
            # Usable the moment loads returns, on every thread.
            if isinstance(obj, list):
                f, cls, inst = obj[0], obj[3], obj[5]
                f(1)
                cls.build().get()
                inst.get()
                got[i] = (cls, type(inst))
            else:
                obj[2].build().get()
                got[i] = (obj[2], obj[3])
        except BaseException:
            import traceback
            errors.append("%s thread %d: %s" % (name, i, traceback.format_exc()))
    ts = [threading.Thread(target=load, args=(i,)) for i in range(8)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    if not errors and any(g != got[0] for g in got):
        errors.append("%s: threads got different class objects for one class id" % name)
print("\n".join(errors) if errors else "ok")
"""


def _pickle_run(impl: Any, mode: str) -> Any:
    import pickle as _pickle
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-c", PICKLE_ALL, mode, str(THREADS), str(ROUNDS)],
        capture_output=True, env=impl.env(), timeout=300,
    )
    if proc.returncode != 0:
        pytest.fail(f"{mode} run failed ({proc.returncode}):\n{proc.stderr.decode()}")
    return _pickle.loads(proc.stdout)


def test_eight_threads_produce_single_thread_bytes(impl: Any) -> None:
    single, single_errors, _ = _pickle_run(impl, "single")
    assert not single_errors, "\n".join(single_errors)
    threaded, thread_errors, _ = _pickle_run(impl, "threads")
    assert not thread_errors, "\n".join(thread_errors)
    assert sorted(threaded) == list(range(THREADS))
    for t in range(THREADS):
        shared, own, whole = threaded[t]
        ref_shared, ref_own, ref_whole = single[t]
        assert own == ref_own, f"thread {t}: own objects pickled differently under contention"
        assert whole == ref_whole, f"thread {t}: list of own objects pickled differently"
        assert shared == ref_shared, f"thread {t}: shared objects pickled differently"
    # Threads agree among themselves on the shared objects.
    assert all(threaded[t][0] == threaded[0][0] for t in range(THREADS))


def test_eight_threads_loading_the_same_new_class_get_one_complete_class(impl: Any) -> None:
    single, errors, extra = _pickle_run(impl, "single")
    assert not errors
    payloads = [(f"thread-{t}-objects", single[t][2]) for t in range(THREADS)]
    payloads += [(f"extra-{i}-objects", data) for i, data in enumerate(extra)]
    out = run_python(LOAD_ALL, _dumps_payloads(payloads), env=impl.env())
    assert out.strip() == "ok", out


def _dumps_payloads(payloads: List[Any]) -> bytes:
    import pickle as _pickle
    return _pickle.dumps(payloads)


# --------------------------------------------------------------------------------------------
# register_pickle_by_value while other threads pickle

MODULE_SOURCE = '''
def double(x):
    return 2 * x

class Box:
    def __init__(self, v):
        self.v = v
    def get(self):
        return double(self.v)
'''


def test_register_pickle_by_value_while_other_threads_pickle(impl: Any, tmp_path: Any) -> None:
    import importlib
    import pickle

    from fastfnpickle import register_pickle_by_value, unregister_pickle_by_value

    name = f"ffp_conc_mod_{impl.name}"
    (tmp_path / f"{name}.py").write_text(MODULE_SOURCE)
    sys.path.insert(0, str(tmp_path))
    try:
        mod = importlib.import_module(name)
        objs = [mod.double, mod.Box, mod.Box(4)]
        by_ref = [impl.dumps(o) for o in objs]
        register_pickle_by_value(mod)
        try:
            by_value = [impl.dumps(o) for o in objs]
        finally:
            unregister_pickle_by_value(mod)
        assert by_ref != by_value
        assert [impl.dumps(o) for o in objs] == by_ref

        errors: List[str] = []
        seen: Dict[int, set] = {i: set() for i in range(len(objs))}
        lock = threading.Lock()
        stop = threading.Event()
        barrier = threading.Barrier(THREADS)

        def pickler_thread(t: int) -> None:
            try:
                barrier.wait()
                dumps = impl.core.dumps if t % 2 else impl.dumps
                while not stop.is_set():
                    for i, o in enumerate(objs):
                        data = dumps(o)
                        if data != by_ref[i] and data != by_value[i]:
                            raise AssertionError(f"object {i}: bytes neither by reference "
                                                 f"nor by value: {data.hex()}")
                        with lock:
                            seen[i].add(data == by_value[i])
                    assert pickle.loads(dumps(objs[2])).get() == 8
            except BaseException as exc:
                errors.append(f"pickler {t}: {exc!r}")

        def toggler_thread() -> None:
            try:
                barrier.wait()
                for _ in range(300):
                    register_pickle_by_value(mod)
                    unregister_pickle_by_value(mod)
            except BaseException as exc:
                errors.append(f"toggler: {exc!r}")
            finally:
                stop.set()

        old = sys.getswitchinterval()
        sys.setswitchinterval(1e-5)
        try:
            threads = [threading.Thread(target=pickler_thread, args=(t,))
                       for t in range(THREADS - 1)]
            threads.append(threading.Thread(target=toggler_thread))
            for th in threads:
                th.start()
            for th in threads:
                th.join()
        finally:
            sys.setswitchinterval(old)
        assert not errors, "\n".join(errors)
        assert mod.__name__ not in __import__("fastfnpickle").list_registry_pickle_by_value()
        assert [impl.dumps(o) for o in objs] == by_ref
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)

    # Both variants load in a fresh interpreter; the by-value one without the module on the path.
    check = f"""
        import pickle, sys
        ref, val = pickle.loads(sys.stdin.buffer.read())
        objs = [pickle.loads(p) for p in val]
        assert "{name}" not in sys.modules
        assert objs[0](5) == 10 and objs[1](3).get() == 6 and objs[2].get() == 8
        if len(sys.argv) > 1:
            sys.path.insert(0, sys.argv[1])
            objs = [pickle.loads(p) for p in ref]
            assert objs[2].get() == 8 and type(objs[2]).__module__ == "{name}"
        print("ok")
        """
    import pickle as _pickle
    env = impl.env()
    assert run_python(check, _pickle.dumps((by_ref, by_value)), env=env).strip() == "ok"
    assert run_python(check, _pickle.dumps((by_ref, by_value)), env=env,
                      args=(str(tmp_path),)).strip() == "ok"

"""Children forked from a parent whose threads are busy pickling: no hang, fresh-process bytes.

A ``fork()`` copies the process as it is at that instant: a lock some other thread holds stays
held in the child, where that thread does not exist. The parent here has eight threads making,
pickling and loading classes, closures and TypeVars (taking the class registry's lock all the
time, and the by-value module registry's), and forks 50 children, with ``os.fork`` and with
``multiprocessing``'s fork context. Each child must, within a watchdog timeout, pickle a new
class and function (from ``__main__`` and from a module registered by value), objects it
inherited already pickled, load a class back, and register a module by value; its bytes must
be the ones a fresh interpreter writes for the same objects. Every lock of the package must be
a new one in the child.

Both run in a fresh interpreter of the twin under test (selected by environment before
import), so nothing else the test session did is inherited.
"""

import json
import os
import subprocess
import sys
from typing import Any, Dict

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the platform has no fork()")

FORKS = 50
THREADS = 8
WATCHDOG = 15.0     # seconds a child gets before it counts as hung and is killed
MAX_HUNG = 3        # stop forking after this many hung children: the verdict is in
RUN_TIMEOUT = 240   # the whole parent interpreter

# The objects, exec'd into __main__ of every interpreter under one file name, so a fork child
# and a fresh interpreter compile the same code (line numbers included).
OBJECTS = r'''
import types, typing
import fastfnpickle

class Shared:
    """Defined, and pickled, before any fork."""
    limit = 3
    def clip(self, x):
        return min(x, self.limit)

T = typing.TypeVar("T", bound=int)

def shared_fn(x, scale=2):
    return Shared().clip(x) * scale

def make_probe():
    # A new class object each call, which only a child makes: its id is assigned there.
    class Probe:
        tag = "probe"
        def get(self):
            return (self.tag, shared_fn(1))
    return Probe

def make_closure(k):
    def probe_fn(x):
        return x + k
    return probe_fn

def make_busy_class(t, k):
    class Busy:
        # Many attributes: a longer stretch under the registry's lock while a copy loads.
        for _i in range(30):
            locals()["a%d" % _i] = _i
        del _i
        def __init__(self, v):
            self.v = (v, t, k)
    Busy.__qualname__ = Busy.__name__ = "Busy%d_%d" % (t, k)
    return Busy

# A module registered by value, defined from source the same way everywhere.
REGISTERED_SOURCE = """
class Reg:
    def twice(self, x):
        return 2 * x

def reg_fn(x):
    return Reg().twice(x)

def make():
    class Made(Reg):
        pass
    return Made
"""
registered = types.ModuleType("ffp_fork_registered")
exec(compile(REGISTERED_SOURCE, "<ffp-fork-registered>", "exec"), registered.__dict__)
import sys as _sys
_sys.modules[registered.__name__] = registered
fastfnpickle.register_pickle_by_value(registered)

def child_pickles():
    """What every child pickles (and what a fresh interpreter pickles to compare)."""
    dumps = fastfnpickle.dumps
    return {
        "new class": dumps(make_probe()),
        "new function": dumps(make_closure(5)),
        "new registered class": dumps(registered.make()),
        "inherited": dumps((Shared, shared_fn, T, registered.Reg, registered.reg_fn)),
    }
'''

PREAMBLE = (
    "exec(compile(" + repr(OBJECTS) + ", '<ffp-fork-objects>', 'exec'))\n"
)

FRESH = PREAMBLE + r"""
import json
print(json.dumps({k: v.hex() for k, v in child_pickles().items()}))
"""

PARENT = PREAMBLE + r"""
import gc, json, multiprocessing, os, pickle, select, signal, sys, threading, time
import traceback, warnings

# 3.12+ warns that forking a threaded process may deadlock the child: that is the point.
warnings.simplefilter("ignore", DeprecationWarning)
HOW, FORKS, THREADS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
WATCHDOG, MAX_HUNG = float(sys.argv[4]), int(sys.argv[5])
LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


def package_locks():
    # Every lock a module of the package holds at module level, by "module.name".
    found = {}
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "fastfnpickle" or name.startswith("fastfnpickle.")):
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, LOCK_TYPES):
                found[name + "." + attr] = value
    return found


import fastfnpickle.futures, fastfnpickle.distributed  # their locks must be renewed too
fastfnpickle.dumps((Shared, shared_fn, T, registered.Reg, registered.reg_fn))  # ids, caches
churn = types.ModuleType("ffp_fork_churn")
sys.modules[churn.__name__] = churn
parent_locks = {}


def child_work():
    stale = [name for name, lock in package_locks().items()
             if id(lock) == parent_locks.get(name)]
    out = {k: v.hex() for k, v in child_pickles().items()}
    cls = make_probe()
    assert pickle.loads(fastfnpickle.dumps(cls)) is cls
    extra = types.ModuleType("ffp_fork_child_module")
    sys.modules[extra.__name__] = extra
    fastfnpickle.register_pickle_by_value(extra)
    return {"pickles": out, "stale_locks": stale}


def child_result():
    try:
        return child_work()
    except BaseException:
        return {"error": traceback.format_exc()}


stop = threading.Event()
thread_errors = []


def busy(t):
    try:
        k = 0
        while not stop.is_set():
            cls = make_busy_class(t, k % 5)
            tv = typing.TypeVar("B%d_%d" % (t, k % 3), bound=int)
            blob = fastfnpickle.dumps((cls, make_closure(k), tv, cls(k)))
            loaded = pickle.loads(blob)
            assert loaded[0] is cls
            if t == 0:
                # The by-value module registry's lock, and the weakref callbacks of dead
                # classes (they take the class registry's lock too).
                fastfnpickle.register_pickle_by_value(churn)
                fastfnpickle.unregister_pickle_by_value(churn)
                if k % 20 == 0:
                    gc.collect()
            k += 1
    except BaseException:
        thread_errors.append(traceback.format_exc())


def run_os_fork():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            data = json.dumps(child_result()).encode()
            while data:
                data = data[os.write(w, data):]
        finally:
            os._exit(0)
    os.close(w)
    chunks, deadline, hung = [], time.monotonic() + WATCHDOG, False
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([r], [], [], left)[0]:
            hung = True
            break
        chunk = os.read(r, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    if hung:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None if hung else json.loads(b"".join(chunks))


def mp_child(conn):
    conn.send_bytes(json.dumps(child_result()).encode())
    conn.close()


def run_mp_fork():
    ctx = multiprocessing.get_context("fork")
    r, w = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=mp_child, args=(w,))
    proc.start()
    w.close()
    result = json.loads(r.recv_bytes()) if r.poll(WATCHDOG) else None
    if result is None:
        proc.kill()
    proc.join()
    r.close()
    return result


sys.setswitchinterval(1e-5)  # many thread switches, so locks are often held at a fork
threads = [threading.Thread(target=busy, args=(t,), daemon=True) for t in range(THREADS)]
for th in threads:
    th.start()
time.sleep(0.2)
run = run_os_fork if HOW == "os.fork" else run_mp_fork
results, hung, forked = [], 0, 0
for i in range(FORKS):
    parent_locks.clear()
    parent_locks.update({name: id(lock) for name, lock in package_locks().items()})
    forked += 1
    result = run()
    if result is None:
        hung += 1
        if hung >= MAX_HUNG:
            break
    else:
        results.append(result)
stop.set()
for th in threads:
    th.join(WATCHDOG)
print(json.dumps({"forked": forked, "hung": hung, "results": results,
                  "thread_errors": thread_errors,
                  "locks": sorted(package_locks())}))
"""


def _run(impl: Any, *args: str) -> Dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", *args], capture_output=True,
                          env=impl.env(), timeout=RUN_TIMEOUT)
    if proc.returncode != 0:
        pytest.fail(f"interpreter failed ({proc.returncode}):\n"
                    f"{proc.stderr.decode(errors='replace')}")
    result: Dict[str, Any] = json.loads(proc.stdout)
    return result


@pytest.mark.parametrize("how", ["os.fork", "multiprocessing"])
def test_forked_children_of_busy_threads(impl: Any, how: str) -> None:
    fresh = _run(impl, FRESH)
    out = _run(impl, PARENT, how, str(FORKS), str(THREADS), str(WATCHDOG), str(MAX_HUNG))
    assert not out["thread_errors"], "\n".join(out["thread_errors"])
    assert out["hung"] == 0, (
        f"{out['hung']} of the first {out['forked']} children forked from 8 busy threads "
        f"hung (killed after {WATCHDOG:.0f} s each)")
    assert out["forked"] == FORKS and len(out["results"]) == FORKS
    # The registries' locks at least; a lock added anywhere in the package is checked too.
    assert "fastfnpickle._class_registry._LOCK" in out["locks"]
    assert "fastfnpickle._modules._LOCK" in out["locks"]
    for n, result in enumerate(out["results"]):
        assert "error" not in result, f"child {n} failed:\n{result['error']}"
        assert result["stale_locks"] == [], (
            f"child {n}: locks inherited as they were at fork: {result['stale_locks']}")
        for name, data in result["pickles"].items():
            assert data == fresh[name], (
                f"child {n}: {name} pickled to other bytes than in a fresh interpreter")


# A thread stopped by the fork between the writes of a registration (_class_registry._remember):
# here the class's side is written and the id's is not. Left so, the id would look free in the
# child, and another class of the same content could take it.
HALF_WRITTEN = r"""
import os, weakref
import fastfnpickle
from fastfnpickle import _class_registry as registry

class Half:
    pass

oid = "0123456789abcdef01234567-0"
registry._writing = (registry._ID_BY_CLASS, registry._CLASS_BY_ID, id(Half), oid)
registry._ID_BY_CLASS[id(Half)] = (weakref.ref(Half), oid)
held = registry._LOCK
held.acquire()  # and the lock, as a thread inside the registry holds it
pid = os.fork()
if pid == 0:
    ok = (registry._writing is None and registry.known_id(Half) is None
          and registry._LOCK is not held)
    fastfnpickle.dumps(Half)  # registers it again, whole
    ok = ok and registry.known_id(Half) not in (None, oid)
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""


def test_a_registration_half_written_at_the_fork_is_undone(impl: Any) -> None:
    proc = subprocess.run([sys.executable, "-c", HALF_WRITTEN], capture_output=True,
                          env=impl.env(), timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout.decode().strip() == "0"

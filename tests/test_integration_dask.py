"""Dask distributed: ``fastfnpickle.distributed.install()`` plus the worker preload.

One real ``LocalCluster(processes=True, n_workers=2)`` per implementation, started by a fresh
interpreter whose ``__main__`` defines the classes and functions. The script runs the documented
example's workloads and then every check below, collecting failures instead of stopping at the
first, so one cluster start covers them all.
"""

import importlib.util
import json
from pathlib import Path

import pytest

# Checked without importing: importing distributed installs tblib's copyreg reducers for every
# exception in this (the test runner's) process, which changes how other tests pickle.
if importlib.util.find_spec("distributed") is None:
    pytest.skip("dask.distributed not installed (pip install fastfnpickle[dask])",
                allow_module_level=True)

from conftest import run_python  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dask_cluster.py"

DASK_CHECKS = r"""
import json, os, runpy, sys, traceback
import distributed.client, distributed.protocol.pickle, distributed.scheduler
from dask.distributed import Client, LocalCluster
import fastfnpickle, fastfnpickle.distributed as ffd

example_path, implementation = sys.argv[1:3]
original_dumps = distributed.protocol.pickle.dumps
failures = {}

def check(name, fn):
    try:
        fn()
    except BaseException:
        failures[name] = traceback.format_exc()

def pickled_by_fastfnpickle():
    ours = os.path.join("fastfnpickle", "distributed.py")
    return any(frame.filename.endswith(ours) for frame in traceback.extract_stack())

def probe_result(flag):
    return {"pickled by fastfnpickle": flag}

class Probe:
    # Records, when pickled, whether fastfnpickle's dumps is doing the pickling.
    def __reduce__(self):
        return (probe_result, (pickled_by_fastfnpickle(),))

class Ledger:
    def __init__(self, entries):
        self.entries = entries

    def total(self):
        return sum(self.entries)

def make_error_class():
    class LocalError(Exception):
        pass
    return LocalError

LocalError = make_error_class()

def fail_local(k):
    raise LocalError(f"bad {k}")

def expect_raises(kind, message, fn):
    try:
        fn()
    except kind as exc:
        assert type(exc) is kind and str(exc) == message, repr(exc)
    else:
        raise AssertionError(f"no {kind.__name__}")

check("implementation", lambda: fastfnpickle.IMPLEMENTATION == implementation or 1 / 0)
example = runpy.run_path(example_path, run_name="dask_example")

ffd.install()
ffd.install()   # idempotent
for module in (distributed.protocol.pickle, distributed.client, distributed.scheduler):
    check(f"installed in {module.__name__}", lambda: module.dumps is ffd.dumps or 1 / 0)

with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                  preload=["fastfnpickle.distributed"], dashboard_address=None) as cluster, \
        Client(cluster) as client:
    check("example workloads (1,000-task closure map, closure result, class round trip)",
          lambda: example["run"](client))

    def workers_installed():
        states = client.run(ffd.installed)
        pids = client.run(os.getpid)
        assert len(states) == 2 and all(states.values()), states
        assert os.getpid() not in pids.values(), pids
    check("preload installed in both worker processes", workers_installed)

    check("client -> worker pickled by fastfnpickle", lambda: (
        client.submit(lambda p: p, Probe(), pure=False).result()
        == {"pickled by fastfnpickle": True}) or 1 / 0)
    check("worker -> client pickled by fastfnpickle", lambda: (
        client.submit(lambda: Probe(), pure=False).result()
        == {"pickled by fastfnpickle": True}) or 1 / 0)

    def ledger_round_trip():
        ledger = client.submit(lambda l: Ledger(l.entries + [4]), Ledger([1, 2, 3])).result()
        assert type(ledger) is Ledger and ledger.total() == 10, vars(ledger)
    check("__main__ class instance round trip", ledger_round_trip)

    def closure_between_workers():
        k = 3
        triple = client.submit(lambda: (lambda x: x * k), pure=False)
        results = [client.submit(lambda g, y: g(y), triple, y, workers=[w]).result()
                   for y, w in zip((5, 6), client.scheduler_info()["workers"])]
        assert results == [15, 18], results
    check("closure result used by tasks on both workers", closure_between_workers)

    check("ZeroDivisionError comes back", lambda: expect_raises(
        ZeroDivisionError, "division by zero", lambda: client.submit(lambda: 1 / 0).result()))
    check("dynamic exception class comes back", lambda: expect_raises(
        LocalError, "bad 7", lambda: client.submit(fail_local, 7).result()))

    ffd.uninstall()
    for module in (distributed.protocol.pickle, distributed.client, distributed.scheduler):
        check(f"uninstalled in {module.__name__}",
              lambda: module.dumps is original_dumps or 1 / 0)
    # The control: with dask's own dumps the probe reports it, so the probe can tell.
    check("probe tells dask's own dumps apart", lambda: (
        client.submit(lambda p: p, Probe(), pure=False).result()
        == {"pickled by fastfnpickle": False}) or 1 / 0)

print(json.dumps(failures))
"""


def test_local_cluster(impl):
    out = run_python(DASK_CHECKS, env=impl.env(), args=(str(EXAMPLE), impl.name), timeout=300)
    failures = json.loads(out.strip().splitlines()[-1])
    assert not failures, "\n\n".join(f"{name}:\n{tb}" for name, tb in failures.items())

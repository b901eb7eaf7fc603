"""joblib / loky with fastfnpickle as the loky pickler (``LOKY_PICKLER`` or ``set_loky_pickler``).

loky builds its pickler as ``fastfnpickle.Pickler(file, protocol=...)`` subclassed with a
per-instance ``dispatch_table``; these checks run ``joblib.Parallel(n_jobs=2)`` for real in a
fresh interpreter whose ``__main__`` defines the lambdas, closures and classes.
"""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("joblib", reason="joblib not installed (pip install fastfnpickle[joblib])")

from conftest import run_python  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_example_joblib(impl):
    proc = subprocess.run([sys.executable, str(EXAMPLES / "joblib_parallel.py")],
                          capture_output=True, env=impl.env(), timeout=240)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "[100, 500, 1300, 2500, 4100, 6100]"


LOKY_CHECKS = r"""
import os, sys
import fastfnpickle
from joblib import Parallel, delayed
from joblib.externals.loky import set_loky_pickler
from joblib.externals.loky.backend import reduction

implementation, how = sys.argv[1:3]
assert fastfnpickle.IMPLEMENTATION == implementation
if how == "call":
    set_loky_pickler("fastfnpickle")
assert reduction.get_loky_pickler_name() == "fastfnpickle"
assert issubclass(reduction.get_loky_pickler(), fastfnpickle.Pickler)

class Box:
    def __init__(self, v):
        self.v = v

k = 3
boxes = Parallel(n_jobs=2)(delayed(lambda b: Box(b.v * k))(Box(i)) for i in range(8))
assert all(type(b) is Box for b in boxes) and [b.v for b in boxes] == [3 * i for i in range(8)]

# The workers pickle their results with fastfnpickle as well.
seen = Parallel(n_jobs=2)(
    delayed(lambda: (reduction.get_loky_pickler_name(),
                     issubclass(reduction.get_loky_pickler(), fastfnpickle.Pickler),
                     os.getpid()))()
    for _ in range(4))
assert all(name == "fastfnpickle" and ours and pid != os.getpid() for name, ours, pid in seen)

try:
    Parallel(n_jobs=2)(delayed(lambda: 1 / 0)() for _ in range(2))
except ZeroDivisionError as exc:
    assert "division by zero" in str(exc)
else:
    raise AssertionError("no ZeroDivisionError")

# The control: with the stdlib pickler the same kind of call fails, so it was fastfnpickle
# (not a cloudpickle fallback inside joblib) that carried the lambdas above.
set_loky_pickler("pickle")
try:
    Parallel(n_jobs=2)(delayed(lambda x: x)(i) for i in range(2))
except Exception as exc:
    assert "pickle" in repr(exc).lower() or "lambda" in repr(exc), repr(exc)
else:
    raise AssertionError("the stdlib pickler shipped a lambda")
print("ok")
"""


@pytest.mark.parametrize("how", ["env", "call"])
def test_loky_pickler(impl, how):
    env = impl.env()
    env.pop("LOKY_PICKLER", None)
    if how == "env":
        env["LOKY_PICKLER"] = "fastfnpickle"
    out = run_python(LOKY_CHECKS, env=env, args=(impl.name, how))
    assert out.strip() == "ok"

"""Every module imports on its own, first, in a fresh interpreter.

The package face (``__init__``) is replaced by an empty package so that it cannot import
anything in a helpful order: a module that only works when something else was imported before
it (an import circle) fails here.
"""

import os
import pkgutil
import subprocess
import sys

import pytest
from conftest import PACKAGE_DIR, child_pythonpath

MODULES = sorted(
    info.name for info in pkgutil.walk_packages([PACKAGE_DIR], "fastfnpickle.")
    if not info.name.endswith("__main__")
)

FIRST_IMPORT = """
import importlib, sys, types
package = types.ModuleType("fastfnpickle")
package.__path__ = [{path!r}]
sys.modules["fastfnpickle"] = package  # the face, empty: no import order handed down
importlib.import_module({name!r})
loaded = sorted(m for m in sys.modules if m.startswith("fastfnpickle."))
print(" ".join(loaded))
"""


@pytest.mark.parametrize("name", MODULES)
def test_module_imports_first_on_its_own(name: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", FIRST_IMPORT.format(path=PACKAGE_DIR, name=name)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": child_pythonpath()},
    )
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())
    assert name in loaded
    if name in LOAD_SIDE:
        # Loading a pickle never pulls in the pickler.
        assert not loaded & DUMP_SIDE, sorted(loaded & DUMP_SIDE)


LOAD_SIDE = {"fastfnpickle._rebuild", "fastfnpickle._load_py", "fastfnpickle._load",
             "fastfnpickle._class_registry", "fastfnpickle._names", "fastfnpickle._format",
             "fastfnpickle._reconstruct"}
DUMP_SIDE = {"fastfnpickle._core", "fastfnpickle._core_py", "fastfnpickle._classes",
             "fastfnpickle._modules", "fastfnpickle._reducers", "fastfnpickle._errors",
             "fastfnpickle._impl", "fastfnpickle._streams", "fastfnpickle._wrappers",
             "fastfnpickle._annotations", "fastfnpickle._enums"}


def test_modules_found() -> None:
    # The walk sees the package's modules (a wrong path would make the test above vacuous).
    assert {"fastfnpickle._rebuild", "fastfnpickle._core_py", "fastfnpickle._impl",
            "fastfnpickle._annotations"} <= set(MODULES)

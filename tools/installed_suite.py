#!/usr/bin/env python3
"""Run the test suite against the installed fastfnpickle, both implementations.

Usage (stdlib only; run it with the interpreter whose install is to be tested)::

    python tools/installed_suite.py [--copy] [--smoke] [--junit-dir DIR] TESTS [-- PYTEST ARGS]

``TESTS`` is a ``tests/`` directory. With ``--copy`` it is first copied into a new temporary
directory, so that nothing next to it (a checkout's ``src/``, ``setup.py``) can be imported in
place of the install; without it the directory must already be such a copy (cibuildwheel's
``test-sources`` makes one). The script checks that ``fastfnpickle`` imports from this
interpreter's site-packages with the compiled core active, then runs pytest twice, as the nox
test sessions do:

- ``cython``: the default environment (the ``impl`` fixture runs every behaviour test against
  both twins, the public API uses the compiled core);
- ``python``: ``FASTFNPICKLE_NO_EXTENSIONS=1 -m "not cython and not slow"`` (what the
  import-time selection changes, with the pure twin selected).

``slow`` tests and the integration tests (torch, Dask, joblib, which need packages and the
``examples/`` beside the tests) are left out, as in the nox test sessions. ``--smoke`` runs a
few files only (for wheels tested under emulation, where the whole suite takes hours).

Used by cibuildwheel's ``test-command`` (``pyproject.toml``) and by the nox ``wheel`` session
(``tools/nox_wheel.py``, which imports :data:`PASSES` and :func:`pytest_args`).
Exits non-zero if the check or any pass fails; every pass runs even after a failure.
"""

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

NO_EXT = "FASTFNPICKLE_NO_EXTENSIONS"
REQUIRE_EXT = "FASTFNPICKLE_REQUIRE_EXTENSIONS"
# name -> (pytest mark expression, environment added for the pass)
PASSES: Dict[str, Tuple[str, Dict[str, str]]] = {
    "cython": ("not slow", {}),
    "python": ("not cython and not slow", {NO_EXT: "1"}),
}
IGNORED = ["test_integration_*.py"]
# Half a minute per pass natively: the API, the selection of the twin, functions, closures and
# classes by value, deterministic bytes, the code encoding (the CRC-32 path this CPU takes) and
# hostile input against the compiled core.
SMOKE = ["test_api.py", "test_selection.py", "test_functions.py", "test_closures.py",
         "test_classes.py", "test_determinism.py", "test_code_encoding.py", "test_hostile.py",
         "test_reconstructor_args.py"]
# pytest exit code 5: nothing collected (a smoke file missing, an empty selection).
NOTHING_COLLECTED = 5

# Prints where fastfnpickle was imported from and which implementation is active.
PROBE = ("import os, fastfnpickle; print(fastfnpickle.IMPLEMENTATION); "
         "print(os.path.realpath(os.path.dirname(fastfnpickle.__file__)))")


def pytest_args(tests: str, name: str, smoke: bool = False,
                junit: Optional[str] = None) -> List[str]:
    """Arguments after ``python -m`` for pass ``name`` over the tests directory ``tests``."""
    marks, _ = PASSES[name]
    targets = [os.path.join(tests, f) for f in SMOKE
               if os.path.exists(os.path.join(tests, f))] if smoke else [tests]
    args = ["pytest", "-q", "-p", "no:cacheprovider", "-m", marks,
            *(f"--ignore-glob={os.path.join('*', pattern)}" for pattern in IGNORED), *targets]
    if junit:
        args.append(f"--junitxml={junit}")
    return args


def pass_env(name: str, base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment of pass ``name``: no build or selection switch leaks in from outside,
    and no ``PYTHONPATH`` (which could put a source tree ahead of the install)."""
    env = dict(os.environ if base is None else base)
    for var in (NO_EXT, REQUIRE_EXT, "PYTHONPATH", "PYTHONHOME"):
        env.pop(var, None)
    env.update(PASSES[name][1])
    return env


def site_dirs() -> List[str]:
    """Where this interpreter installs packages."""
    paths = sysconfig.get_paths()
    return sorted({os.path.realpath(paths[k]) for k in ("purelib", "platlib")})


def check_install(cwd: str) -> Optional[str]:
    """None if ``fastfnpickle`` imports from site-packages with the compiled core active (in
    a child started in ``cwd``, with the first pass's environment), else what is wrong."""
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, env=pass_env("cython"),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return f"import fastfnpickle failed:\n{proc.stderr}"
    implementation, where = proc.stdout.split()[-2:]
    print(f"installed-suite: fastfnpickle {implementation} from {where}", flush=True)
    if not any(where.startswith(d + os.sep) for d in site_dirs()):
        return f"fastfnpickle was imported from {where}, not from {' or '.join(site_dirs())}"
    if implementation != "cython":
        return (f"IMPLEMENTATION is {implementation!r}: the compiled core did not import from "
                f"the installed wheel")
    return None


def copy_tests(tests: str, parent: Optional[str] = None) -> str:
    """A copy of ``tests`` (caches and bytecode left out) in ``parent``, by default a new
    temporary directory; returns the copy's path."""
    parent = parent or tempfile.mkdtemp(prefix="fastfnpickle-installed-suite-")
    dest = os.path.join(parent, "tests")
    shutil.copytree(tests, dest, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", ".pytest_cache", ".hypothesis"))
    return dest


def main(argv: Sequence[str]) -> int:
    args, extra = list(argv), []
    if "--" in args:
        args, extra = args[:args.index("--")], args[args.index("--") + 1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tests", help="a tests/ directory")
    parser.add_argument("--copy", action="store_true",
                        help="copy it into a temporary directory first")
    parser.add_argument("--smoke", action="store_true", help=f"only {', '.join(SMOKE)}")
    parser.add_argument("--junit-dir", help="write <pass>.xml junit reports there")
    parser.add_argument("--passes", default=",".join(PASSES),
                        help=f"comma-separated subset of {', '.join(PASSES)}")
    opts = parser.parse_args(args)
    tests = os.path.abspath(opts.tests)
    if not os.path.isfile(os.path.join(tests, "conftest.py")):
        parser.error(f"{tests} holds no conftest.py: not the suite's tests/ directory")
    if opts.copy:
        tests = copy_tests(tests)
    cwd = os.path.dirname(tests)
    problem = check_install(cwd)
    if problem:
        print(f"installed-suite: FAILED: {problem}", file=sys.stderr, flush=True)
        return 1
    failed: List[str] = []
    for name in opts.passes.split(","):
        junit = os.path.join(os.path.abspath(opts.junit_dir), f"{name}.xml") \
            if opts.junit_dir else None
        cmd = [sys.executable, "-m", *pytest_args(tests, name, opts.smoke, junit), *extra]
        switches = " ".join(f"{k}={v} " for k, v in PASSES[name][1].items())
        print(f"installed-suite: pass {name}: {switches}{' '.join(cmd)}", flush=True)
        code = subprocess.run(cmd, cwd=cwd, env=pass_env(name)).returncode
        if code not in (0, NOTHING_COLLECTED) or (code == NOTHING_COLLECTED and name == "cython"):
            failed.append(f"{name} (pytest exit {code})")
    print(f"installed-suite: {'FAILED: ' + ', '.join(failed) if failed else 'all passes OK'}",
          flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

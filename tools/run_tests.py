#!/usr/bin/env python3
"""The project's test command: ``python3 tools/run_tests.py``.

For every CPython 3.9-3.13 found on the machine (pyenv's versions, then ``python3.X`` on PATH,
one per minor version) it keeps a venv in ``.venvs/py3.X``, installs the project there editable
with the compiled core required (``FASTFNPICKLE_REQUIRE_EXTENSIONS=1``), checks that
``fastfnpickle.IMPLEMENTATION == "cython"``, then runs pytest twice:

1. the default environment: the ``impl`` fixture runs every behaviour test against both twins,
   and the public API / reconstructors use the compiled core;
2. ``FASTFNPICKLE_NO_EXTENSIONS=1 -m "not cython and not slow"``: what depends on the import-time
   selection (the public API, the reconstructors pickles call on load, subprocess children)
   runs again with the pure-Python twin selected.

Heavy tests (``slow`` marker, ``tests/test_integration_*.py``, the ``bench/`` smoke run) run
only on 3.11, whose venv also gets torch/dask/joblib/cloudpickle/dill/pytest-benchmark.

If ``FASTFNPICKLE_NO_EXTENSIONS`` is set in the caller's environment the runner builds and tests
the pure-Python install only (one pass), which is useful while the compiled core does not build.

Stdlib only; runs with any python3. Exits non-zero if any stage failed or no interpreter was found.
"""

import argparse
import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENVS = os.path.join(ROOT, ".venvs")
SUPPORTED = [(3, 9), (3, 10), (3, 11), (3, 12), (3, 13)]
HEAVY = (3, 11)
# Only 3.11 gets the integration stack: torch ships a local CPU wheel for it only.
# Same pins as pyproject's extras (torch exactly: a looser pin can pull a multi-GB CUDA build).
INTEGRATION_PACKAGES = [
    "torch==2.13.0", "joblib>=1.6,<2", "dask[distributed]>=2026.8", "cloudpickle>=3.1,<3.2",
    "dill>=0.4,<0.5", "pytest-benchmark>=4",
]
# Bump when the install recipe changes so existing venvs are rebuilt.
RECIPE = 2
MAX_LISTED = 25  # failing tests listed per interpreter in the summary
NO_EXT = "FASTFNPICKLE_NO_EXTENSIONS"
REQUIRE_EXT = "FASTFNPICKLE_REQUIRE_EXTENSIONS"
TRUE_VALUES = frozenset({"1", "true", "yes", "on"})  # same rule as src/fastfnpickle/_env.py

PROBE = (
    "import json, platform, sys, sysconfig; print(json.dumps({"
    "'impl': platform.python_implementation(), 'version': list(sys.version_info[:3]), "
    "'executable': sys.executable, "
    "'free_threaded': bool(sysconfig.get_config_var('Py_GIL_DISABLED'))}))"
)


def env_flag(name: str, env: Optional[Dict[str, str]] = None) -> bool:
    return (os.environ if env is None else env).get(name, "").strip().lower() in TRUE_VALUES


def log(msg: str = "") -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------------- discovery

@dataclass
class Interpreter:
    executable: str
    version: Tuple[int, int, int]

    @property
    def minor(self) -> Tuple[int, int]:
        return self.version[0], self.version[1]

    @property
    def tag(self) -> str:
        return f"py{self.version[0]}.{self.version[1]}"

    def __str__(self) -> str:
        return f"{'.'.join(map(str, self.version))} ({self.executable})"


def _candidates() -> List[str]:
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv"), "/root/.pyenv"]
    found: List[str] = []
    for root in dict.fromkeys(r for r in roots if r):
        found += sorted(glob.glob(os.path.join(root, "versions", "*", "bin", "python")))
    for major, minor in SUPPORTED:
        exe = shutil.which(f"python{major}.{minor}")
        if exe:
            found.append(exe)
    return list(dict.fromkeys(found))


def _probe(exe: str) -> Optional[Interpreter]:
    try:
        out = subprocess.run([exe, "-c", PROBE], capture_output=True, text=True, timeout=60,
                             check=True).stdout
        info = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None  # a pyenv shim for an uninstalled version, a broken install, ...
    if info["impl"] != "CPython" or info["free_threaded"]:
        return None
    return Interpreter(info["executable"], tuple(info["version"]))  # type: ignore[arg-type]


def discover() -> List[Interpreter]:
    """One CPython per supported minor version, the newest patch release found."""
    best: Dict[Tuple[int, int], Interpreter] = {}
    for exe in _candidates():
        interp = _probe(exe)
        if interp is None or interp.minor not in SUPPORTED:
            continue
        current = best.get(interp.minor)
        if current is None or interp.version > current.version:
            best[interp.minor] = interp
    return [best[v] for v in sorted(best)]


# ---------------------------------------------------------------------------------- plumbing

@contextmanager
def file_lock(path: str) -> Iterator[None]:
    """Serialize runners sharing a work tree: venvs and in-place builds are shared state."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking
        yield
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def base_env() -> Dict[str, str]:
    """The caller's environment without the switches this runner sets per stage."""
    env = dict(os.environ)
    for name in (NO_EXT, REQUIRE_EXT, "PYTHONHOME", "__PYVENV_LAUNCHER__"):
        env.pop(name, None)
    return env


def venv_python(venv: str) -> str:
    if os.name == "nt":
        return os.path.join(venv, "Scripts", "python.exe")
    return os.path.join(venv, "bin", "python")


def venv_env(venv: str, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = base_env()
    env["VIRTUAL_ENV"] = venv
    env["PATH"] = os.path.dirname(venv_python(venv)) + os.pathsep + env.get("PATH", "")
    env.update(extra or {})
    return env


def run_logged(cmd: Sequence[str], logfile: str, env: Dict[str, str]) -> bool:
    """Run ``cmd`` with output appended to ``logfile``; on failure show the log's tail."""
    with open(logfile, "a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        rc = subprocess.run(list(cmd), cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL).returncode
    if rc != 0:
        with open(logfile) as fh:
            tail = fh.readlines()[-80:]
        log(f"    command failed ({rc}): {' '.join(cmd)}")
        log(f"    --- last lines of {os.path.relpath(logfile, ROOT)} ---")
        log("".join("    | " + line for line in tail).rstrip())
    return rc == 0


def build_requirements() -> List[str]:
    """``[build-system] requires`` of pyproject.toml (no tomllib before 3.11)."""
    with open(os.path.join(ROOT, "pyproject.toml")) as fh:
        text = fh.read()
    section = re.search(r"^\[build-system\](.*?)(?=^\[|\Z)", text, re.S | re.M)
    match = re.search(r"requires\s*=\s*\[(.*?)\]", section.group(1) if section else "", re.S)
    return re.findall(r"[\"']([^\"']+)[\"']", match.group(1)) if match else []


def _digest(*paths: str) -> str:
    h = hashlib.sha256()
    for path in paths:
        with open(os.path.join(ROOT, path), "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


# ---------------------------------------------------------------------------------- stages

@dataclass
class Result:
    interp: Interpreter
    stages: List[Tuple[str, float, str]] = field(default_factory=list)  # name, seconds, status
    counts: Dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("passed", "failed", "errors", "skipped"), 0))
    failures: List[str] = field(default_factory=list)  # "pass name: test id"

    @property
    def ok(self) -> bool:
        return bool(self.stages) and all(status == "ok" for _, _, status in self.stages)


class Runner:
    def __init__(self, interp: Interpreter, args: argparse.Namespace, pure: bool) -> None:
        self.interp = interp
        self.args = args
        self.pure = pure
        self.heavy = interp.minor == HEAVY
        self.venv = os.path.join(VENVS, interp.tag)
        self.python = venv_python(self.venv)
        self.logdir = os.path.join(VENVS, "logs", interp.tag)
        self.result = Result(interp)

    def stage(self, name: str, fn) -> bool:  # type: ignore[no-untyped-def]
        log(f"[{self.interp.tag}] {name} ...")
        start = time.monotonic()
        try:
            status = fn()
        except Exception as exc:  # a stage must never take the whole run down
            log(f"    {type(exc).__name__}: {exc}")
            status = "error"
        took = time.monotonic() - start
        status = {True: "ok", False: "FAILED"}.get(status, status)  # type: ignore[call-overload]
        self.result.stages.append((name, took, status))
        log(f"[{self.interp.tag}] {name}: {status} in {took:.1f}s")
        return status == "ok"

    # -- venv ------------------------------------------------------------------------------

    def _stamp(self) -> Dict[str, object]:
        return {
            "recipe": RECIPE, "version": list(self.interp.version),
            "executable": os.path.realpath(self.interp.executable),
            "project": _digest("pyproject.toml", "setup.py"), "heavy": self.heavy,
        }

    def _stamp_path(self) -> str:
        return os.path.join(self.venv, "fastfnpickle-stamp.json")

    def _venv_current(self) -> bool:
        if self.args.recreate or not os.path.exists(self.python):
            return False
        try:
            with open(self._stamp_path()) as fh:
                return json.load(fh) == self._stamp()
        except (OSError, ValueError):
            return False

    def _build_env(self) -> Dict[str, str]:
        return venv_env(self.venv, {NO_EXT: "1"} if self.pure else {REQUIRE_EXT: "1"})

    def setup_venv(self) -> bool:
        """Fresh venv with the project installed, or an up-to-date one with the core rebuilt."""
        os.makedirs(self.logdir, exist_ok=True)
        logfile = os.path.join(self.logdir, "install.log")
        open(logfile, "w").close()
        pip = [self.python, "-m", "pip", "--disable-pip-version-check", "--no-input"]
        if self._venv_current():
            log("    reusing the venv (up to date)")
            if self.pure:
                return True
            # The editable install already points at src/: only the extension may be stale.
            # An in-place build_ext is incremental (pip's editable build always recompiles).
            log("    rebuilding the compiled core in place")
            temp = os.path.join(self.venv, "build")
            return run_logged([self.python, "setup.py", "build_ext", "--inplace",
                               "--build-temp", os.path.join(temp, "temp"),
                               "--build-lib", os.path.join(temp, "lib")],
                              logfile, self._build_env())
        shutil.rmtree(self.venv, ignore_errors=True)
        log(f"    creating {os.path.relpath(self.venv, ROOT)}")
        if not run_logged([self.interp.executable, "-m", "venv", self.venv], logfile, base_env()):
            return False
        steps = [
            # What a contributor types: an isolated PEP 517 build with the core required.
            pip + ["install", "--progress-bar", "off", "-e", ".[test]"],
            # Build requirements in the venv too, for fast in-place rebuilds on reuse.
            pip + ["install", "--progress-bar", "off", *build_requirements()],
        ]
        if self.heavy:
            steps.append(pip + ["install", "--progress-bar", "off", *INTEGRATION_PACKAGES])
        for cmd in steps:
            if not run_logged(cmd, logfile, self._build_env()):
                return False
        with open(self._stamp_path(), "w") as fh:
            json.dump(self._stamp(), fh)
        return True

    # -- checks ----------------------------------------------------------------------------

    def verify(self) -> bool:
        """The compiled core is what the venv imports, from this work tree."""
        code = ("import fastfnpickle, os; "
                "print(fastfnpickle.IMPLEMENTATION); print(os.path.realpath(fastfnpickle.__file__))")
        env = venv_env(self.venv, {NO_EXT: "1"} if self.pure else None)
        proc = subprocess.run([self.python, "-c", code], cwd=ROOT, env=env, capture_output=True,
                              text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            log(proc.stderr.rstrip())
            return False
        impl, where = proc.stdout.split()
        expected = "python" if self.pure else "cython"
        log(f"    IMPLEMENTATION={impl} from {where}")
        src = os.path.realpath(os.path.join(ROOT, "src")) + os.sep
        if not where.startswith(src):
            log(f"    fastfnpickle was imported from outside {src}")
            return False
        if impl != expected:
            log(f"    expected IMPLEMENTATION={expected!r}")
            return False
        return True

    def _selection(self, extra_marks: Sequence[str]) -> List[str]:
        light = self.args.quick or not self.heavy
        marks = list(dict.fromkeys([*extra_marks, *(["not slow"] if light else [])]))
        args = ["-m", " and ".join(marks)] if marks else []
        if light:
            args.append("--ignore-glob=" + os.path.join(ROOT, "tests", "test_integration_*.py"))
        return args

    def pytest(self, name: str, extra_env: Dict[str, str], selection: List[str],
               empty_ok: bool) -> str:
        report = os.path.join(self.logdir, f"junit-{name}.xml")
        if os.path.exists(report):
            os.remove(report)
        cmd = [self.python, "-m", "pytest", "-q", f"--junitxml={report}", *selection, *self.args.pytest_args]
        log(f"    $ {shlex.join(extra_env_repr(extra_env) + cmd[1:])}")
        rc = subprocess.run(cmd, cwd=ROOT, env=venv_env(self.venv, extra_env),
                            stdin=subprocess.DEVNULL).returncode
        self._count(report, name)
        if rc == 5:
            return "ok" if empty_ok else "FAILED (no tests ran)"
        return "ok" if rc == 0 else f"FAILED (pytest exit {rc})"

    def _count(self, report: str, name: str) -> None:
        try:
            root = ET.parse(report).getroot()
        except (OSError, ET.ParseError):
            return
        for case in root.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                self.result.failures.append(f"{name}: {case.get('classname')}::{case.get('name')}")
        for suite in root.iter("testsuite"):
            tests = int(suite.get("tests", 0))
            failed, errors = int(suite.get("failures", 0)), int(suite.get("errors", 0))
            skipped = int(suite.get("skipped", 0))
            self.result.counts["passed"] += tests - failed - errors - skipped
            self.result.counts["failed"] += failed
            self.result.counts["errors"] += errors
            self.result.counts["skipped"] += skipped

    def bench_smoke(self) -> str:
        cmd = [self.python, "-m", "pytest", "bench", "--benchmark-disable", "-q"]
        log(f"    $ {shlex.join(['python'] + cmd[1:])}")
        rc = subprocess.run(cmd, cwd=ROOT, env=venv_env(self.venv),
                            stdin=subprocess.DEVNULL).returncode
        return "ok" if rc == 0 else f"FAILED (pytest exit {rc})"

    def run(self) -> Result:
        with file_lock(os.path.join(VENVS, f"{self.interp.tag}.lock")):
            # In-place builds share src/ (the generated C, the .so files): one at a time.
            with file_lock(os.path.join(VENVS, "build.lock")):
                if not self.stage("install", self.setup_venv):
                    return self.result
            if not self.stage("verify", self.verify):
                return self.result
            if self.pure:
                self.stage("pytest (pure install)", lambda: self.pytest(
                    "pure", {NO_EXT: "1"}, self._selection([]), empty_ok=False))
                return self.result
            self.stage("pytest (default: both twins)", lambda: self.pytest(
                "default", {}, self._selection([]), empty_ok=False))
            # Only what the import-time selection changes: the "python" twin of every
            # impl-parametrized test plus the unparametrized ones, now under the pure install.
            self.stage(f"pytest ({NO_EXT}=1)", lambda: self.pytest(
                "no-extensions", {NO_EXT: "1"}, self._selection(["not cython", "not slow"]),
                empty_ok=True))
            if self.heavy and not self.args.quick and has_bench_tests():
                self.stage("bench smoke", self.bench_smoke)
        return self.result


def extra_env_repr(extra: Dict[str, str]) -> List[str]:
    return [f"{k}={v}" for k, v in extra.items()] + ["python"]


def has_bench_tests() -> bool:
    bench = os.path.join(ROOT, "bench")
    patterns = ("test_*.py", "*_test.py")
    return any(glob.glob(os.path.join(bench, "**", p), recursive=True) for p in patterns)


# ---------------------------------------------------------------------------------- main

def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    argv = list(argv)
    passthrough: List[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(
        prog="tools/run_tests.py",
        description="Run the fastfnpickle test suite on every CPython 3.9-3.13 found, once per "
                    "implementation. Arguments after -- go to pytest.")
    parser.add_argument("--python", action="append", default=[], metavar="3.X",
                        help="only this minor version (repeatable)")
    parser.add_argument("--quick", action="store_true",
                        help="skip slow-marked tests, integration tests and the bench smoke run")
    parser.add_argument("--recreate", action="store_true", help="rebuild the venvs from scratch")
    parser.add_argument("--list", action="store_true", help="print the interpreters found and exit")
    args = parser.parse_args(argv)
    args.pytest_args = passthrough
    try:
        args.only = {tuple(int(p) for p in v.split(".")[:2]) for v in args.python}
    except ValueError:
        parser.error(f"--python takes versions like 3.11, got {args.python}")
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    found = discover()
    log("fastfnpickle test run; interpreters found:")
    for interp in found:
        log(f"  {interp}")
    missing = [f"{a}.{b}" for a, b in SUPPORTED if (a, b) not in {i.minor for i in found}]
    if missing:
        log(f"  WARNING: not found: {', '.join(missing)}")
    if args.list:
        return 0 if found else 1
    selected = [i for i in found if not args.only or i.minor in args.only]
    unknown = args.only - {i.minor for i in found}
    if unknown:
        log(f"requested interpreter(s) not found: "
            f"{', '.join(f'{a}.{b}' for a, b in sorted(unknown))}")
        return 1
    if not selected:
        log("no CPython 3.9-3.13 found: nothing was tested")
        return 1
    pure = env_flag(NO_EXT)
    if pure:
        log(f"NOTE: {NO_EXT} is set: building and testing the pure-Python install only")
    results = [Runner(interp, args, pure).run() for interp in selected]

    log("")
    log("=" * 78)
    log("summary")
    totals = dict.fromkeys(("passed", "failed", "errors", "skipped"), 0)
    for res in results:
        log(f"  {res.interp.tag} {'PASS' if res.ok else 'FAIL'}  {res.interp}")
        for name, took, status in res.stages:
            log(f"      {name:<40} {took:7.1f}s  {status}")
        for failure in res.failures[:MAX_LISTED]:
            log(f"        failed {failure}")
        if len(res.failures) > MAX_LISTED:
            log(f"        ... and {len(res.failures) - MAX_LISTED} more")
        for key in totals:
            totals[key] += res.counts[key]
    failed_runs = [r.interp.tag for r in results if not r.ok]
    log(f"  ran on: {', '.join(r.interp.tag for r in results)}"
        + (f"; FAILED on: {', '.join(failed_runs)}" if failed_runs else ""))
    log(f"  wall time: {time.monotonic() - started:.1f}s")
    failed = totals["failed"] + totals["errors"]
    if failed_runs and failed == 0:
        failed = len(failed_runs)  # a build or verify failure ran no test but still fails
    log(f"total: {totals['passed']} passed, {failed} failed, {totals['skipped']} skipped")
    return 1 if failed_runs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

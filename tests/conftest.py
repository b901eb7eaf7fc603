"""Shared fixtures: the ``impl`` fixture runs every behaviour test against both twins.

The suite tests the package this interpreter imports, wherever it is: an editable install
(``src/``), or an installed wheel with ``tests/`` copied somewhere else. Child interpreters
import that same package (see :func:`child_pythonpath`), never a source tree next to the tests.
"""

import io
import os
import site
import subprocess
import sys
import textwrap
from typing import Any, Dict, List, Optional

import pytest

import fastfnpickle
from fastfnpickle import _core_py
from fastfnpickle._env import env_flag

TESTS = os.path.dirname(os.path.abspath(__file__))
# The package under test: what this interpreter imported, not a path relative to the tests.
PACKAGE_DIR = os.path.dirname(os.path.abspath(fastfnpickle.__file__))
PACKAGE_ROOT = os.path.dirname(PACKAGE_DIR)


def _source_tree() -> Optional[str]:
    """The checkout holding these tests, when they run from one (None for a copy of tests/)."""
    root = os.path.dirname(TESTS)
    markers = ("pyproject.toml", "setup.py", os.path.join("src", "fastfnpickle", "_core.pyx"))
    return root if all(os.path.exists(os.path.join(root, m)) for m in markers) else None


SOURCE_TREE = _source_tree()


def require_source_tree(why: str) -> str:
    """The checkout's root, or skip: some tests read or build the sources themselves."""
    if SOURCE_TREE is None:
        pytest.skip(f"needs the source tree ({why}); these tests run from a copy of tests/")
    return SOURCE_TREE


def _site_dirs() -> List[str]:
    dirs = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return [os.path.realpath(d) for d in dirs]


def child_pythonpath(inherited: str = "") -> str:
    """``PYTHONPATH`` for a child interpreter: it imports the package this process tests.

    An installed package sits in a site directory, which the child (same ``sys.executable``)
    searches anyway: nothing is added for it, so a source tree can never shadow it. Any other
    location (an editable install's ``src/``, a ``PYTHONPATH`` entry) is put first. The tests
    directory comes next: children import helpers such as ``_parity_corpus``.
    """
    entries = [] if os.path.realpath(PACKAGE_ROOT) in _site_dirs() else [PACKAGE_ROOT]
    entries.append(TESTS)
    entries += [e for e in inherited.split(os.pathsep) if e and e not in entries]
    return os.pathsep.join(entries)


def pytest_configure(config: Any) -> None:
    # Also declared in pyproject.toml; repeated here for a copy of tests/ run on its own.
    config.addinivalue_line("markers", "cython: runs against the compiled core "
                                       "(deselect with -m 'not cython')")
    config.addinivalue_line("markers", "slow: long-running tests")


class Impl:
    """One implementation of the pickling hot path, driven like the public API."""

    def __init__(self, name: str, core: Any) -> None:
        self.name = name
        self.core = core
        self.Pickler = core.Pickler

    def dumps(self, obj: Any, protocol: Optional[int] = None, buffer_callback: Any = None) -> bytes:
        f = io.BytesIO()
        self.Pickler(f, protocol, buffer_callback=buffer_callback).dump(obj)
        return f.getvalue()

    def dump(self, obj: Any, file: Any, protocol: Optional[int] = None) -> None:
        self.Pickler(file, protocol).dump(obj)

    def env(self) -> Dict[str, str]:
        """Environment that makes a subprocess load with this implementation active."""
        env = dict(os.environ)
        env["PYTHONPATH"] = child_pythonpath(env.get("PYTHONPATH", ""))
        env.pop("FASTFNPICKLE_NO_EXTENSIONS", None)
        if self.name == "python":
            env["FASTFNPICKLE_NO_EXTENSIONS"] = "1"
        return env

    def __repr__(self) -> str:
        return f"Impl({self.name})"


def _compiled_core() -> Any:
    try:
        from fastfnpickle import _core  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _core


PYTHON_IMPL = Impl("python", _core_py)


@pytest.fixture(params=[
    pytest.param("python", id="python"),
    pytest.param("cython", id="cython", marks=pytest.mark.cython),
])
def impl(request: Any) -> Impl:
    if request.param == "python":
        return PYTHON_IMPL
    core = _compiled_core()
    if core is None:
        if env_flag("CI") and not env_flag("FASTFNPICKLE_NO_EXTENSIONS"):
            pytest.fail("compiled core did not import in CI")
        pytest.skip("compiled core not built (pure-Python install)")
    return Impl("cython", core)


def run_python(code: str, data: bytes = b"", env: Optional[Dict[str, str]] = None,
               args: tuple = (), timeout: float = 120) -> str:
    """Run ``code`` in a fresh interpreter with ``data`` on stdin; return its stdout.

    Fails the test with the child's stderr when it exits non-zero.
    """
    if env is None:
        env = PYTHON_IMPL.env()
        env.pop("FASTFNPICKLE_NO_EXTENSIONS", None)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], input=data,
        capture_output=True, env=env, timeout=timeout,
    )
    if proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace")
        pytest.fail(f"subprocess failed ({proc.returncode}):\n{stderr}")
    return proc.stdout.decode()


LOADER_PREAMBLE = """
import pickle, sys
obj = pickle.loads(sys.stdin.buffer.read())
"""


def load_in_subprocess(data: bytes, check: str, impl: Optional[Impl] = None) -> str:
    """Load ``data`` in a fresh interpreter (as ``obj``) and run ``check`` on it.

    ``impl`` chooses the implementation active in the child (default: the default one).
    """
    env = impl.env() if impl is not None else None
    return run_python(LOADER_PREAMBLE + textwrap.dedent(check), data, env=env)


# Feature tables: {name: (build, check)}, where build() makes the objects and check is assert-only
# source run with the loaded objects as ``obj``.

def run_check(check: str, loaded: Any) -> None:
    """Run a feature's ``check`` source against ``loaded`` in this process."""
    exec(compile(textwrap.dedent(check), "<check>", "exec"),
         {"obj": loaded, "__name__": "__check__"})


def check_features_in_fresh_interpreter(impl: Impl, features: Dict[str, Any]) -> None:
    """Pickle every feature's objects with ``impl`` and run all checks in one fresh interpreter,
    reporting every failing feature (not only the first)."""
    payload = {name: build() for name, (build, _) in features.items()}
    checks = {name: check for name, (_, check) in features.items()}
    out = load_in_subprocess(impl.dumps((payload, checks)), """
        import textwrap
        payload, checks = obj
        failures = []
        for name, check in checks.items():
            try:
                exec(textwrap.dedent(check), {"obj": payload[name], "__name__": "__main__"})
            except BaseException as exc:
                import traceback
                failures.append(
                    f"feature {name}: "
                    + "".join(traceback.format_exception_only(type(exc), exc))
                    + "".join(traceback.format_tb(exc.__traceback__)[-1:]))
        assert not failures, "\\n".join(failures)
        print(len(checks))
    """, impl)
    assert int(out) == len(features)

"""Distribution artifacts: ``python -m build`` gives an sdist holding the ``.pyx`` sources (no
generated C) and a platform wheel holding the compiled core. Each installs into a fresh venv:
the wheel's default implementation is the compiled one, the sdist compiles it from scratch, and
``FASTFNPICKLE_NO_EXTENSIONS=1`` at build time gives a pure install.

Slow (about two minutes: three builds, three venvs); needs PyPI for the build requirements,
and the source tree (skipped when the suite runs from a copy of tests/ against a wheel).
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from conftest import require_source_tree

pytestmark = pytest.mark.slow

CORE_MODULES = ("_core", "_load")
# Left out of the copy that gets built: local build products and caches, so the artifacts come
# from the sources alone, as on a clean clone.
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv*", ".nox", "build", "dist", "__pycache__", "*.egg-info", "*.so", "*.pyd",
    "*.c", "*.html", ".pytest_cache", ".hypothesis", ".benchmarks")

# Runs inside an installed venv, away from the work tree.
PROBE = r"""
import json, os, pickle, sys
import fastfnpickle

k = 3
f = pickle.loads(fastfnpickle.dumps(lambda x: x * k))
assert f(2) == 6
pkg = os.path.dirname(os.path.realpath(fastfnpickle.__file__))
print(json.dumps({
    "impl": fastfnpickle.IMPLEMENTATION,
    "pkg": pkg,
    "prefix": os.path.realpath(sys.prefix),
    "compiled": sorted(n.split(".")[0] for n in os.listdir(pkg) if n.endswith((".so", ".pyd"))),
}))
"""


def clean_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FASTFNPICKLE_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def run(cmd: List[str], cwd: Path, env: Optional[Dict[str, str]] = None) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=str(cwd), env=env or clean_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n"
                    f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc.stdout + proc.stderr


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def fresh_venv(where: Path) -> Path:
    run([sys.executable, "-m", "venv", where], cwd=where.parent)
    return venv_python(where)


def install_and_probe(tmp: Path, artifact: Path, **build_env: str) -> Dict[str, object]:
    """Install ``artifact`` into a new venv, then report what the installed package imports."""
    python = fresh_venv(tmp / "venv")
    run([python, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
         artifact], cwd=tmp, env=clean_env(**build_env))
    # The run-time environment holds no FASTFNPICKLE_* switch whatever the build had.
    info = json.loads(run([python, "-c", PROBE], cwd=tmp).strip().splitlines()[-1])
    # Imported from the venv, not from the work tree.
    assert Path(str(info["pkg"])).is_relative_to(Path(str(info["prefix"]))), info
    return info


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """sdist and wheel from ``python -m build`` (which builds the wheel from the sdist)."""
    root = Path(require_source_tree("it builds the sdist and wheel from the sources"))
    tmp = tmp_path_factory.mktemp("dist")
    # Asked of a child started away from the work tree: a stray build/ directory there would
    # pass for the package in this process.
    probe = subprocess.run([sys.executable, "-m", "build", "--version"], cwd=str(tmp),
                           capture_output=True, stdin=subprocess.DEVNULL)
    if probe.returncode != 0:
        run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "build"],
            cwd=tmp, env=dict(os.environ))
    tree = tmp / "tree"
    # Symlinks as they are: a venv in the tree may point at an interpreter elsewhere.
    shutil.copytree(root, tree, ignore=NOT_SOURCES, symlinks=True)
    out = tmp / "out"
    run([sys.executable, "-m", "build", "--outdir", out, tree], cwd=tmp)
    sdists = list(out.glob("*.tar.gz"))
    wheels = list(out.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in out.iterdir())
    return {"sdist": sdists[0], "wheel": wheels[0]}


def sdist_names(sdist: Path) -> List[str]:
    """Member paths relative to the sdist's top directory."""
    with tarfile.open(sdist) as tar:
        return [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]


def sdist_generated_files(sdist: Path) -> List[str]:
    return [n for n in sdist_names(sdist) if n.endswith((".c", ".so", ".pyd"))]


def test_sdist_holds_pyx_and_no_generated_c(dists: Dict[str, Path]) -> None:
    names = sdist_names(dists["sdist"])
    for mod in CORE_MODULES:
        assert f"src/fastfnpickle/{mod}.pyx" in names, names
    # A rebuild needs the included .pxi files and setup.py's helper; a stranger needs the
    # license, the changelog and the suite (run against the install, helpers and corpus too).
    for needed in ("setup.py", "pyproject.toml", "MANIFEST.in", "src/fastfnpickle/_env.py",
                   "src/fastfnpickle/_cells.pxi", "src/fastfnpickle/_crc32.pxi", "LICENSE",
                   "CHANGELOG.md", "README.md", "tests/conftest.py", "tests/_parity_corpus.py",
                   "src/fastfnpickle/bench/callgrind_baseline.json"):
        assert needed in names, names
    generated = sdist_generated_files(dists["sdist"])
    assert not generated, f"sdist ships build products: {generated}"


def test_wheel_is_platform_specific_with_compiled_core(dists: Dict[str, Path]) -> None:
    wheel = dists["wheel"]
    assert not wheel.name.endswith("-none-any.whl"), wheel.name
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    for mod in CORE_MODULES:
        assert any(n.startswith(f"fastfnpickle/{mod}.") and n.endswith((".so", ".pyd"))
                   for n in names), (mod, names)
    assert not [n for n in names if n.endswith(".c")], names
    assert "fastfnpickle/bench/callgrind_baseline.json" in names, names
    # PEP 639: the license as an SPDX expression, its text in the wheel.
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    assert b"\nLicense-Expression: MIT\n" in metadata, metadata[:2000]


def test_wheel_install_defaults_to_compiled_core(dists: Dict[str, Path], tmp_path: Path) -> None:
    info = install_and_probe(tmp_path, dists["wheel"])
    assert info["impl"] == "cython", info
    assert info["compiled"] == sorted(CORE_MODULES), info


def test_sdist_install_compiles_core_from_scratch(dists: Dict[str, Path],
                                                  tmp_path: Path) -> None:
    # With no C in the sdist, a compiled core here was cythonized and compiled by pip's build.
    assert not sdist_generated_files(dists["sdist"]), "sdist ships C: not a build from scratch"
    info = install_and_probe(tmp_path, dists["sdist"])
    assert info["impl"] == "cython", info
    assert info["compiled"] == sorted(CORE_MODULES), info


def test_no_extensions_build_gives_pure_install(dists: Dict[str, Path], tmp_path: Path) -> None:
    info = install_and_probe(tmp_path, dists["sdist"], FASTFNPICKLE_NO_EXTENSIONS="1")
    assert info["impl"] == "python", info
    assert info["compiled"] == [], info

"""Every input that ever found a bug on load, loaded again: clean outcome, both twins.

``tests/fuzz_corpus/`` holds the inputs (the fuzzer's finds, and the hand-made ones of issue
24 that ``fuzz/seeds.py known`` builds), named ``<description>[.py3XY].<sha256[:12]>.pickle``.
A ``.py3XY`` part means the bytes carry that minor version's code tag: on any other minor they
would only test the version check, so they are skipped there.

Each input is loaded in a fresh child with ``PYTHONMALLOC=debug``, which turns a heap overrun
into an abort at the next check of the allocator's guard bytes (the ASAN session of
noxfile.py sets ``FASTFNPICKLE_CORPUS_MALLOC=malloc_debug`` so the sanitizer sees every
allocation). Clean means: the pickle loads, or ``pickle.UnpicklingError``. A crash, a hang,
or any other exception fails, naming the file.

Add an input with ``python fuzz/harness.py triage FILE --save "what it does"``.
"""

import hashlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, List

import pytest
from conftest import Impl

CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
NAME = re.compile(r"^(?P<desc>[a-z0-9-]+)(?:\.py(?P<minor>3\d+))?\.(?P<hash>[0-9a-f]{12})\.pickle$")
THIS_MINOR = f"{sys.version_info[0]}{sys.version_info[1]}"
TIMEOUT = 120  # seconds; these are tiny pickles: a load this slow is a hang

LOADER = r"""
import faulthandler, gc, pickle, sys
faulthandler.enable()
with open(sys.argv[1], "rb") as fh:
    data = fh.read()
try:
    obj = pickle.loads(data)
except pickle.UnpicklingError:
    print("UnpicklingError")
except BaseException as exc:
    print(f"other: {type(exc).__name__}: {str(exc)[:300]}")
else:
    print("loaded")
    del obj
gc.collect()  # a bad reference count or traversal shows here, not in a later test
"""


def _files() -> List[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.suffix == ".pickle") if CORPUS.is_dir() else []


def _params() -> List[Any]:
    params = []
    for path in _files():
        match = NAME.match(path.name)
        minor = match.group("minor") if match else None
        marks = []
        if minor is not None and minor != THIS_MINOR:
            marks.append(pytest.mark.skip(reason=f"the bytes carry Python {minor[0]}.{minor[1:]}'s"
                                                 f" code tag"))
        params.append(pytest.param(path, id=path.name, marks=marks))
    return params


def test_corpus_file_names_match_their_contents() -> None:
    """The naming convention holds and the hash is the file's own: a file edited in place,
    or copied under a guessed name, is caught here rather than silently testing something
    else."""
    files = _files()
    assert files, f"no regression inputs in {CORPUS}"
    for path in files:
        match = NAME.match(path.name)
        assert match, f"{path.name}: not <description>[.py3XY].<12 hex>.pickle"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        assert match.group("hash") == digest, f"{path.name}: content hash is {digest}"


def test_corpus_has_inputs_for_every_python() -> None:
    """At least one input runs on whatever minor this is (the untagged ones)."""
    assert any(NAME.match(p.name) and not NAME.match(p.name).group("minor")  # type: ignore
               for p in _files())


@pytest.mark.parametrize("path", _params())
def test_corpus_input_loads_cleanly(impl: Impl, path: Path) -> None:
    env = impl.env()
    env["PYTHONMALLOC"] = os.environ.get("FASTFNPICKLE_CORPUS_MALLOC", "debug")
    try:
        proc = subprocess.run([sys.executable, "-c", LOADER, str(path)], capture_output=True,
                              env=env, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"[{impl.name}] {path.name}: no outcome within {TIMEOUT}s (a hang)")
    out = proc.stdout.decode(errors="replace").strip()
    err = proc.stderr.decode(errors="replace").strip()
    if proc.returncode != 0:
        code = proc.returncode
        how = (f"killed by {signal.Signals(-code).name}" if 0 < -code < 65
               else f"exit code {code}")
        pytest.fail(f"[{impl.name}] {path.name}: the loading interpreter CRASHED ({how}); "
                    f"stdout {out!r}\n{err[-3000:]}")
    assert out in ("loaded", "UnpicklingError"), f"[{impl.name}] {path.name}: {out}\n{err[-2000:]}"

"""Pickle in a producer interpreter running a script as ``__main__``, load in another.

The producer runs ``source`` (which defines ``OBJ``) with ``python -c``, so everything it
defines lives in ``__main__`` and exists nowhere else; it writes the pickle of ``OBJ`` to
stdout. The loader is a fresh interpreter that never ran the script.
"""

import subprocess
import sys
import textwrap
from typing import Optional

import pytest
from conftest import PYTHON_IMPL, Impl, load_in_subprocess

_TRAILER = """
import sys as _sys
_data = {dumps}(OBJ)
_sys.stdout.flush()
_sys.stdout.buffer.write(_data)
"""

DUMPERS = {
    "fastfnpickle": "__import__('fastfnpickle').dumps",
    "cloudpickle": "__import__('cloudpickle').dumps",
}


def produce(impl: Impl, source: str, dumper: str = "fastfnpickle") -> bytes:
    """The pickle of the ``OBJ`` that ``source`` defines, made in a fresh ``__main__``."""
    script = textwrap.dedent(source) + _TRAILER.format(dumps=DUMPERS[dumper])
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True,
                          env=impl.env(), timeout=120)
    if proc.returncode != 0:
        pytest.fail(f"producer failed ({proc.returncode}):\n"
                    f"{proc.stderr.decode(errors='replace')}")
    return proc.stdout


def produce_checked(impl: Impl, source: str) -> bytes:
    """:func:`produce` with ``impl``; for the compiled core, also check that the pure-Python
    twin writes the same bytes."""
    data = produce(impl, source)
    if impl.name != PYTHON_IMPL.name:
        assert produce(PYTHON_IMPL, source) == data, "the twins wrote different bytes"
    return data


def roundtrip(impl: Impl, source: str, check: str) -> str:
    """Produce (parity-checked) and run ``check`` on the loaded ``obj`` in a fresh loader;
    returns what ``check`` printed."""
    return load_in_subprocess(produce_checked(impl, source), check, impl)


def cloudpickle_roundtrip(source: str, check: str, impl: Optional[Impl] = None) -> str:
    """The same round trip through cloudpickle, for comparing behaviour."""
    pytest.importorskip("cloudpickle", reason="cloudpickle (test extra) is not installed")
    impl = impl or PYTHON_IMPL
    return load_in_subprocess(produce(impl, source, "cloudpickle"), check, impl)

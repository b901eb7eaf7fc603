"""Failure modes: a function from another Python minor version fails to load with an error
naming both versions; too-deep nesting is a PicklingError; unpicklable leaves keep their own
exception type and message."""

import os
import pickle
import shutil
import subprocess
import sys
import threading
from typing import Any, Optional

import pytest
from conftest import PACKAGE_DIR, load_in_subprocess, run_python

from fastfnpickle._format import CODE_TAG

PYENV = "/root/.pyenv/versions"
MINOR = sys.version_info[1]
# Another real minor version whose tag has the same length, so the rewrite keeps offsets valid.
OTHER_TAG = "3.11" if MINOR == 10 else f"3.{MINOR - 1}"


def _short_string(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE


def _retag(data: bytes) -> bytes:
    """``data`` with every code tag claiming Python ``OTHER_TAG``."""
    out = data
    for suffix in ("", "+sets"):
        out = out.replace(_short_string(CODE_TAG + suffix), _short_string(OTHER_TAG + suffix))
    assert out != data, "no code tag found in the pickle"
    return out


def _sample_functions() -> Any:
    k = 2

    def plain(x):
        return x * k

    def with_sets(x):
        return x in {"a", "b", "c"}
    return plain, with_sets


@pytest.mark.parametrize("which", [0, 1], ids=["plain", "frozenset_consts"])
def test_other_version_tag_fails_with_both_versions(impl, which: int) -> None:
    func = _sample_functions()[which]
    data = _retag(impl.dumps(func))
    with pytest.raises(pickle.UnpicklingError) as info:
        pickle.loads(data)
    message = str(info.value)
    assert OTHER_TAG in message and CODE_TAG in message, message
    out = load_in_subprocess(pickle.dumps(data), f"""
        try:
            pickle.loads(obj)
        except pickle.UnpicklingError as exc:
            assert {OTHER_TAG!r} in str(exc) and {CODE_TAG!r} in str(exc), str(exc)
            print("refused")
    """, impl)
    assert out.strip() == "refused"


def _other_interpreter() -> Optional[str]:
    for version in ("3.12.1", "3.11.7", "3.13.0", "3.10.13", "3.9.18"):
        exe = os.path.join(PYENV, version, "bin", "python")
        if os.path.exists(exe) and not version.startswith(CODE_TAG + "."):
            return exe
    return None


def _pure_copy(dest: str) -> str:
    """The package under test without its compiled modules (built for this interpreter only),
    copied under ``dest``; returns the directory to put on another interpreter's path."""
    shutil.copytree(PACKAGE_DIR, os.path.join(dest, "fastfnpickle"),
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    return dest


def test_real_other_interpreter_refuses_the_function(impl, tmp_path) -> None:
    exe = _other_interpreter()
    if exe is None:
        pytest.skip("no second CPython minor version installed")
    data = impl.dumps(_sample_functions()[0])
    env = impl.env()
    # The package under test, pure twin only; never this interpreter's site-packages.
    env["PYTHONPATH"] = _pure_copy(str(tmp_path))
    proc = subprocess.run([exe, "-c", """
import pickle, sys
try:
    pickle.loads(sys.stdin.buffer.read())
except pickle.UnpicklingError as exc:
    print("%d.%d|%s" % (sys.version_info[:2] + (exc,)))
"""], input=data, capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    other, _, message = proc.stdout.decode().strip().partition("|")
    assert other != CODE_TAG
    assert other in message and CODE_TAG in message, message


def _deep_list(depth: int) -> list:
    root: list = []
    node = root
    for _ in range(depth):
        child: list = []
        node.append(child)
        node = child
    return root


def test_deep_recursion_is_a_pickling_error(impl) -> None:
    deep = _deep_list(100_000)
    with pytest.raises(pickle.PicklingError):
        impl.dumps(deep)

    def holder():
        return deep
    with pytest.raises(pickle.PicklingError):
        impl.dumps(holder)
    # The pickler is still fine afterwards.
    assert len(pickle.loads(impl.dumps(_deep_list(50)))) == 1
    assert pickle.loads(impl.dumps([1, [2]])) == [1, [2]]


def assert_original_message(exc: BaseException, expected: str) -> None:
    """The original message survives: exactly on 3.11+, where context goes into notes; on
    older versions, which have no notes, the context may only follow it on later lines."""
    if sys.version_info >= (3, 11):
        assert str(exc) == expected
    else:
        assert str(exc).split("\n")[0] == expected


class _CustomError(Exception):
    pass


class _RefusesToPickle:
    def __reduce__(self) -> Any:
        raise _CustomError("refuses to pickle: custom message")


def test_unpicklable_leaf_keeps_type_and_message(impl) -> None:
    lock = threading.Lock()
    with pytest.raises(Exception) as expected:
        pickle.dumps(lock)

    def uses_lock():
        with lock:
            return 1
    with pytest.raises(type(expected.value)) as got:
        impl.dumps(uses_lock)
    assert type(got.value) is type(expected.value)
    assert_original_message(got.value, str(expected.value))

    bad = _RefusesToPickle()
    with pytest.raises(_CustomError) as got_custom:
        impl.dumps(lambda: bad)
    # A note may be added (where the object sits); the message itself stays the original.
    assert_original_message(got_custom.value, "refuses to pickle: custom message")

    gen = (i for i in range(3))
    ns = {"__name__": "ffp_test_leaf_globals", "GEN": gen}
    exec("def reader():\n    return GEN\n", ns)
    with pytest.raises(TypeError) as got_gen:
        impl.dumps(ns["reader"])
    with pytest.raises(TypeError) as expected_gen:
        pickle.dumps(gen)
    assert_original_message(got_gen.value, str(expected_gen.value))


def test_failures_in_fresh_interpreter(impl) -> None:
    out = run_python("""
        import pickle, sys, threading, fastfnpickle
        deep = root = []
        for _ in range(100000):
            deep.append([])
            deep = deep[0]
        try:
            fastfnpickle.dumps(root)
        except pickle.PicklingError:
            print("deep: PicklingError")
        lock = threading.Lock()
        try:
            pickle.dumps(lock)
        except Exception as exc:
            expected = (type(exc), str(exc))
        try:
            fastfnpickle.dumps(lambda: lock)
        except Exception as exc:
            message = str(exc) if sys.version_info >= (3, 11) else str(exc).split("\\n")[0]
            assert (type(exc), message) == expected, (exc, expected)
            print("leaf:", type(exc).__name__)
        print(pickle.loads(fastfnpickle.dumps(lambda: 5))())
    """, env=impl.env())
    assert out.split("\n")[:3] == ["deep: PicklingError", "leaf: TypeError", "5"]

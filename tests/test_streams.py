"""Files and standard streams: std streams by reference (the loader's own), readable files by
content and position, everything else a PicklingError naming where the file sits."""

import os
import pickle
import subprocess
import sys
import textwrap
from typing import Any, List

import pytest
from _fresh import cloudpickle_roundtrip, roundtrip
from conftest import Impl

STD_STREAMS = """
import functools, sys

def log(msg, out=sys.stdout):
    print("log:" + msg, file=out)

class Holder:
    stream = sys.stdout
    def say(self, msg):
        print("holder:" + msg, file=self.stream)

err = functools.partial(print, "to-stderr", file=sys.stderr)
OBJ = [log, err, Holder, lambda: sys.stderr]
"""

CHECK_STD_STREAMS = """
import sys
log, err, Holder, get_err = obj[:4]
assert log.__defaults__[0] is sys.stdout
assert err.keywords["file"] is sys.stderr
assert Holder.stream is sys.stdout
log("a")
Holder().say("b")
err()
print("ok")
"""


def test_std_streams_load_as_the_loaders_own(impl: Impl) -> None:
    source = STD_STREAMS + "OBJ.append(sys.stdin)\n"
    check = CHECK_STD_STREAMS + "assert obj[4] is sys.stdin\n"
    assert roundtrip(impl, source, check).splitlines() == ["log:a", "holder:b", "ok"]
    # cloudpickle does the same for stdout and stderr (it refuses stdin).
    assert (cloudpickle_roundtrip(STD_STREAMS, CHECK_STD_STREAMS).splitlines()
            == ["log:a", "holder:b", "ok"])


def test_original_std_streams_by_reference(impl: Impl) -> None:
    out = roundtrip(impl, """
        import io, sys
        real = sys.stdout
        sys.stdout = io.StringIO()     # the script redirected its stdout
        OBJ = (real, sys.__stderr__)
        sys.stdout = real
    """, """
        import sys
        assert obj[0] is sys.stdout and obj[1] is sys.__stderr__
        print("ok")
    """)
    assert out == "ok\n"


def test_std_stream_of_another_type_by_reference(impl: Impl) -> None:
    # As in a notebook, whose sys.stdout is its own stream class, set before user code runs.
    out = roundtrip(impl, """
        import functools, io, sys

        class KernelStream(io.TextIOBase):
            def write(self, text):
                return len(text)

        sys.stderr = KernelStream()
        OBJ = (functools.partial(print, file=sys.stderr), lambda: sys.stderr)
    """, """
        import sys
        assert obj[0].keywords["file"] is sys.stderr
        print(type(obj[1]()).__name__)
    """)
    assert out == "TextIOWrapper\n"


def _files_source(path: str) -> str:
    return f"""
        import io, os
        path = {path!r}
        text = open(path, encoding="utf-8")
        text.readline()                       # positioned after the first line
        binary = open(path, "rb")
        binary.read(4)
        raw = open(path, "rb", buffering=0)    # io.FileIO
        raw.read(2)
        rplus = open(path, "r+", encoding="utf-8")
        wplus = open(path + ".w", "w+", encoding="utf-8")
        wplus.write("written\\nlines")
        wplus.seek(8)
        empty = open(path + ".empty", "w+b")
        untouched = open(path, encoding="utf-8")
        first_line = lambda: text.readline()  # a closure over an open file
        OBJ = [text, binary, raw, rplus, wplus, empty, untouched, first_line]
    """


CHECK_FILES = """
import io
text, binary, raw, rplus, wplus, empty, untouched, first_line = obj
assert type(text) is io.StringIO and type(binary) is io.BytesIO and type(raw) is io.BytesIO
assert text.name.endswith("data.txt") and binary.name == text.name
assert text.tell() == len("h\\u00e9llo\\n")
assert text.read() == "second line\\nthird\\n"
assert binary.read() == "h\\u00e9llo\\nsecond line\\nthird\\n".encode()[4:]
assert raw.read(3) == b"\\xa9l"[:2] + b"l"
assert rplus.read() == "h\\u00e9llo\\nsecond line\\nthird\\n"
assert wplus.read() == "lines" and wplus.getvalue() == "written\\nlines"
assert empty.read() == b"" and empty.tell() == 0
assert untouched.tell() == 0 and untouched.readline() == "h\\u00e9llo\\n"
assert first_line.__globals__["text"] is text  # one copy per file in a pickle
print("ok")
"""


@pytest.fixture
def data_file(tmp_path: Any) -> str:
    path = tmp_path / "data.txt"
    path.write_bytes("h\u00e9llo\nsecond line\nthird\n".encode())
    return str(path)


def test_readable_files_by_content_and_position(impl: Impl, data_file: str) -> None:
    assert roundtrip(impl, _files_source(data_file), CHECK_FILES) == "ok\n"


def test_text_file_matches_cloudpickle(impl: Impl, tmp_path: Any) -> None:
    # ASCII only: cloudpickle takes tell()'s cookie for a character count, which puts it off by
    # one character per multi-byte one before the position (the test above covers those).
    data_file = tmp_path / "data.txt"
    data_file.write_text("hello\nsecond line\nthird\n")
    source = f"""
        f = open({str(data_file)!r}, encoding="utf-8")
        f.readline()
        OBJ = f
    """
    check = "print(repr(obj.read()), obj.name.rsplit('/', 1)[-1])"
    ours = roundtrip(impl, source, check)
    assert ours == cloudpickle_roundtrip(source, check) == "'second line\\nthird\\n' data.txt\n"


def test_pickling_a_file_leaves_its_position_alone(impl: Impl, data_file: str) -> None:
    with open(data_file, encoding="utf-8") as f:
        f.readline()
        before = f.tell()
        loaded = pickle.loads(impl.dumps(f))
        assert f.tell() == before and f.readline() == "second line\n"
    assert loaded.readline() == "second line\n"


def _failure(impl: Impl, obj: Any) -> pickle.PicklingError:
    with pytest.raises(pickle.PicklingError) as info:
        impl.dumps(obj)
    return info.value


def _notes(exc: BaseException) -> List[str]:
    # 3.14+: the C pickler's own notes ("when serializing ...") come first.
    return [n for n in getattr(exc, "__notes__", []) if not n.startswith("when serializing ")]


def test_closed_file_is_a_pickling_error_with_path_and_hint(impl: Impl, data_file: str) -> None:
    f = open(data_file)
    f.close()
    exc = _failure(impl, {"cfg": {"log": f}})
    assert "is closed" in str(exc).splitlines()[0]
    notes = _notes(exc)
    assert any(n.startswith("pickling failed at obj['cfg']['log']") for n in notes), notes
    assert any(n.startswith("hint:") and "reopen" in n for n in notes), notes


@pytest.mark.parametrize("mode", ["w", "a", "wb", "xb"])
def test_write_only_file_is_a_pickling_error_with_path_and_hint(
        impl: Impl, tmp_path: Any, mode: str) -> None:
    with open(tmp_path / "out", mode) as f:
        exc = _failure(impl, [lambda: f])
    assert "open for writing only" in str(exc).splitlines()[0]
    notes = _notes(exc)
    assert any(n.startswith("pickling failed at obj[0].__closure__[0].cell_contents")
               for n in notes), notes
    assert any(n.startswith("hint: files open for writing") for n in notes), notes


def test_pipe_is_a_pickling_error(impl: Impl) -> None:
    r, w = os.pipe()
    with open(r, "rb") as reader, open(w, "wb"):
        exc = _failure(impl, reader)
    assert "not seekable" in str(exc).splitlines()[0]


def test_file_errors_carry_the_path_in_a_fresh_producer(impl: Impl, tmp_path: Any) -> None:
    # The error a script sees: a PicklingError at dump time, never a pickle failing on load.
    script = textwrap.dedent(f"""
        import pickle, fastfnpickle
        log = open({str(tmp_path / "log.txt")!r}, "w")
        def write(msg):
            log.write(msg)
        try:
            fastfnpickle.dumps(write)
        except pickle.PicklingError as exc:
            print(type(exc).__name__)
            # 3.14+: the C pickler's own notes ("when serializing ...") come first.
            print(*[n for n in exc.__notes__ if not n.startswith("when serializing ")],
                  sep="\\n")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=impl.env(), timeout=120, check=True).stdout.splitlines()
    assert out[0] == "PicklingError"
    assert out[1].startswith("pickling failed at write.__globals__['log']"), out

"""How code objects travel: sealed marshal bytes with the file name beside them.

The compiled twins check and write the CRC-32 in C, restore the file name in place on code
objects marshal has just made, and blank it in place while marshalling; these tests hold both
twins to the same bytes and the same results, including when something goes wrong midway.
"""

import io
import pickle
import textwrap
import types
from typing import Any, Dict, List

import pytest
from conftest import PYTHON_IMPL as _PY
from conftest import load_in_subprocess, run_python

from fastfnpickle import _codecheck, _format, _load_py


def _reduce_values(impl: Any, obj: Any) -> List[tuple]:
    """The reduce values ``impl`` gives the functions inside ``obj``, in pickling order."""
    seen: List[tuple] = []

    class Recording(impl.Pickler):  # type: ignore[misc, name-defined]
        def reducer_override(self, o: Any) -> Any:
            rv = super().reducer_override(o)
            if type(o) is types.FunctionType and isinstance(rv, tuple):
                seen.append(rv)
            return rv

    Recording(io.BytesIO()).dump(obj)
    return seen


def _compiled_load() -> Any:
    try:
        from fastfnpickle import _load  # type: ignore[attr-defined]
    except ImportError:
        pytest.skip("compiled core not built (pure-Python install)")
    return _load


def _loaders() -> List[Any]:
    loaders = [_load_py]
    try:
        from fastfnpickle import _load  # type: ignore[attr-defined]
        loaders.append(_load)
    except ImportError:
        pass
    return loaders


def _sized_functions() -> List[Any]:
    """Functions whose marshal bytes cover every length modulo 8 (the C CRC's tail cases)."""
    out = []
    for n in range(1, 25):
        ns: Dict[str, Any] = {}
        body = " + ".join(f"x * {i}" for i in range(n % 4 + 1))
        exec(compile(f"f = lambda x: ({body}, {'a' * n!r})", f"<sized-{n}>", "exec"), ns)
        out.append(ns["f"])
    # An unused bytes constant of k bytes lengthens the marshal bytes of one fixed function by
    # exactly k, whatever the version writes for the rest: every length modulo 8 comes up.
    base = out[0]
    for k in range(8):
        code = base.__code__.replace(co_consts=base.__code__.co_consts + (b"z" * k,))
        out.append(types.FunctionType(code, base.__globals__))
    return out


def test_code_bytes_carry_the_zlib_crc32_of_their_marshal_bytes(impl: Any) -> None:
    lengths = set()
    for f in _sized_functions():
        (rv,) = _reduce_values(impl, f)
        tag, data, filename = rv[1][:3]
        lengths.add(len(data) % 8)
        body = _format.unseal(data)  # zlib's CRC-32: raises if the compiled one disagrees
        code = _load_py.code(tag, data, filename)
        assert bytes(body) and code.co_filename == f.__code__.co_filename
        assert code.co_code == f.__code__.co_code
    assert lengths == set(range(8))


def test_every_damaged_byte_is_refused_before_marshal() -> None:
    f = _sized_functions()[5]
    (rv,) = _reduce_values(_PY, f)
    tag, data, filename = rv[1][:3]
    for loader in _loaders():
        for i in range(len(data)):
            for flip in (0x01, 0x80):
                bad = bytearray(data)
                bad[i] ^= flip
                with pytest.raises(pickle.UnpicklingError, match="code: code fails its checksum"):
                    loader.code(tag, bytes(bad), filename)
        with pytest.raises(pickle.UnpicklingError, match="code: code is too short"):
            loader.code(tag, data[:4], filename)


def _nested_function() -> Any:
    ns: Dict[str, Any] = {}
    exec(compile(textwrap.dedent("""
        def outer(a):
            def middle(b):
                squares = [lambda: i * i for i in range(b)]
                return [g() + a for g in squares]
            return middle
        """), "/some/where/tasks.py", "exec"), ns)
    return ns["outer"]


def _filenames(code: types.CodeType) -> List[str]:
    out = [code.co_filename]
    for c in code.co_consts:
        if type(c) is types.CodeType:
            out.extend(_filenames(c))
    return out


def test_dumps_leaves_the_file_names_of_the_pickled_code_alone(impl: Any) -> None:
    f = _nested_function()
    before = _filenames(f.__code__)
    assert len(before) >= 3
    impl.dumps(f)
    impl.dumps(f(1))
    assert _filenames(f.__code__) == before
    assert f(2)(3) == [6, 6, 6]


def test_a_failing_marshal_leaves_the_file_names_alone(impl: Any) -> None:
    f = _nested_function()
    inner = next(c for c in f.__code__.co_consts if type(c) is types.CodeType)
    # A constant marshal refuses, in the nested code object: the outer one is blanked first.
    bad_inner = inner.replace(co_consts=inner.co_consts + (object(),))
    consts = tuple(bad_inner if c is inner else c for c in f.__code__.co_consts)
    g = types.FunctionType(f.__code__.replace(co_consts=consts), f.__globals__)
    before = _filenames(g.__code__)
    with pytest.raises(Exception, match="unmarshallable"):
        impl.dumps(g)
    assert _filenames(g.__code__) == before == ["/some/where/tasks.py"] * len(before)


def test_file_names_restored_on_load_in_nested_code(impl: Any) -> None:
    f = _nested_function()
    other = f.__code__.replace(co_filename="/elsewhere/other.py")  # its nested code keeps theirs
    g = types.FunctionType(other, f.__globals__)
    ns: Dict[str, Any] = {}
    exec("def with_set(x):\n    return x in {'a', 'b', 'c'}\n", ns)  # the sorted-sets path
    with_set = ns["with_set"]
    data = impl.dumps([f, g, f(1), with_set])
    for loader_impl in ("python", "cython"):
        env = impl.env()
        env.pop("FASTFNPICKLE_NO_EXTENSIONS", None)
        if loader_impl == "python":
            env["FASTFNPICKLE_NO_EXTENSIONS"] = "1"
        out = run_python("""
            import pickle, sys, types
            def names(code):
                out = [code.co_filename]
                for c in code.co_consts:
                    if type(c) is types.CodeType:
                        out.extend(names(c))
                return out
            f, g, m, with_set = pickle.loads(sys.stdin.buffer.read())
            print(names(f.__code__))
            print(names(g.__code__))
            print(names(m.__code__))
            print(with_set.__code__.co_filename, with_set("b"), with_set("z"))
            assert f(2)(3) == [6, 6, 6] and m(2) == [2, 2]
        """, data, env=env).splitlines()
        n = len(_filenames(f.__code__))
        assert out[0] == repr(["/some/where/tasks.py"] * n), (loader_impl, out)
        assert out[1] == repr(["/elsewhere/other.py"] + ["/some/where/tasks.py"] * (n - 1))
        assert out[2] == repr(_filenames(f(1).__code__))
        assert out[3] == "<string> True False"


def test_a_function_with_nothing_beyond_code_globals_and_cells_has_no_state(impl: Any) -> None:
    ns: Dict[str, Any] = {"__name__": "__main__"}
    exec("plain = lambda x: x + 1\ndefaults = lambda x, y=2: x + y\n", ns)
    (plain,) = _reduce_values(impl, ns["plain"])
    (defaults,) = _reduce_values(impl, ns["defaults"])
    assert len(plain) == 2  # no state, no state-setter call on load
    assert len(defaults) == 6 and defaults[2]
    out = load_in_subprocess(impl.dumps([ns["plain"], ns["defaults"]]),
                             "print(obj[0](1), obj[1](1))", impl)
    assert out.split() == ["2", "3"]


def test_loading_code_raises_the_marshal_loads_audit_event(impl: Any) -> None:
    f = _nested_function()
    out = run_python("""
        import pickle, sys
        events = []
        sys.addaudithook(lambda event, args: events.append(event))
        pickle.loads(sys.stdin.buffer.read())(1)
        print(events.count("marshal.loads"))
    """, impl.dumps(f), env=impl.env())
    assert int(out) >= 1


@pytest.mark.cython
def test_compiled_loader_matches_the_pure_one_on_every_function() -> None:
    load = _compiled_load()
    for f in _sized_functions() + [_nested_function()]:
        (rv,) = _reduce_values(_PY, f)
        tag, data, filename = rv[1][:3]
        a = load.code(tag, data, filename)
        b = _load_py.code(tag, data, filename)
        assert a == b and _filenames(a) == _filenames(b) == _filenames(f.__code__)


def _interpreter_doc(code: types.CodeType) -> Any:
    cells = tuple(types.CellType() for _ in code.co_freevars) or None
    return types.FunctionType(code, {}, None, None, cells).__doc__


def _code_objects_of(module: Any) -> List[types.CodeType]:
    found: List[types.CodeType] = []

    def walk(code: types.CodeType) -> None:
        found.append(code)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                walk(const)

    for value in vars(module).values():
        for candidate in (value, *vars(value).values()) if isinstance(value, type) else (value,):
            code = getattr(candidate, "__code__", None)
            if isinstance(code, types.CodeType):
                walk(code)
    return found


def test_derived_docstring_matches_the_interpreter(impl: Any) -> None:
    # The compiled core reads the docstring rule from the code struct (3.14+ by a flag); the
    # twin asks the interpreter. Both must give what a function made from the code has.
    import email.message
    import json.decoder
    import pickletools

    codes = [c for m in (json.decoder, email.message, pickletools, textwrap)
             for c in _code_objects_of(m)]
    assert len(codes) > 100

    def documented(a: int) -> int:
        """A docstring."""
        return a

    def constant_first() -> str:
        return "not a docstring"

    base = documented.__code__
    codes += [
        base, constant_first.__code__, (lambda: None).__code__,
        base.replace(co_consts=()),
        base.replace(co_consts=(1,) + base.co_consts[1:]),
        constant_first.__code__.replace(co_consts=("moved first",)
                                        + constant_first.__code__.co_consts),
    ]
    for code in codes:
        if code.co_flags & _codecheck.CO_HAS_DOCSTRING and not code.co_consts:
            # 3.14 crashes making a function of this (see _codecheck): it has no docstring.
            assert impl.core.code_info(code).doc is None
            continue
        try:
            expected = _interpreter_doc(code)
        except Exception:  # a hand-made code object the interpreter refuses: nothing to match
            continue
        got = impl.core.code_info(code).doc
        assert got is expected, (code, got, expected)


@pytest.mark.cython
@pytest.mark.parametrize("module", ["_core", "_load"])
def test_compiled_crc32_paths_match_zlib(module: str) -> None:
    # Both compiled twins seal and check code bytes with one C CRC-32: tables, or from 64
    # bytes on, carry-less multiplication folding where the CPU has it.
    import importlib
    import os
    import zlib

    try:
        mod = importlib.import_module(f"fastfnpickle.{module}")
    except ImportError:
        pytest.skip("compiled core not built")
    paths = [False, None] + ([True] if mod._crc32_has_clmul() else [])
    rng = __import__("random").Random(1234)
    lengths = list(range(0, 260)) + [511, 512, 513, 4096, 65_537]
    for n in lengths:
        data = bytes(rng.getrandbits(8) for _ in range(n)) if n < 4096 else os.urandom(n)
        expected = zlib.crc32(data)
        assert [mod._crc32_paths(data, p) for p in paths] == [expected] * len(paths), n
    block = os.urandom(5000)
    for offset in range(17):  # unaligned starts
        view = memoryview(block)[offset:offset + 1000 + offset]
        assert [mod._crc32_paths(view, p) for p in paths] == [zlib.crc32(view)] * len(paths)


def test_docstring_flag_matches_inspect() -> None:
    import inspect

    assert _codecheck.CO_HAS_DOCSTRING == getattr(inspect, "CO_HAS_DOCSTRING", 0)


def test_docstring_flag_without_constants_is_refused_not_a_crash(impl: Any) -> None:
    # Made by hand only: a docstring function's code with its constants removed. 3.14 crashes
    # making a function of it; pickling must not try, and loading refuses it there.
    def documented() -> None:
        """A docstring."""

    documented.__code__ = documented.__code__.replace(co_consts=())
    data = impl.dumps(documented)
    out = run_python("""
        import pickle, sys
        import fastfnpickle
        try:
            fastfnpickle.loads(sys.stdin.buffer.read())
            print("loaded")
        except pickle.UnpicklingError as exc:
            print("refused:", exc)
    """, data, env=impl.env())
    # Its bytecode still loads constant 0, which is gone: the code check refuses that on every
    # minor (3.14+ also for the docstring flag, which it checks first).
    assert out.startswith("refused:"), out
    if _codecheck.CO_HAS_DOCSTRING:
        assert "flagged as having a docstring" in out, out
    else:
        assert "past its 0 constants" in out, out

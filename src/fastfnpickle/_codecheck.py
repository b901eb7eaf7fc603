"""Load-side guard against bytecode that crashes the interpreter when merely read.

Some opcodes only ever exist in a running interpreter's private copy of the
bytecode (instrumentation for sys.monitoring, JIT executor entries): marshal never writes
them, because ``co_code`` translates them back first. A code object that holds one raw
cannot be translated back (3.12-3.15 dereference tables the code object does not have), so
merely reading its ``co_code``, ``replace()``-ing it or marshalling it kills the interpreter.
Such code can only come from damaged or forged bytes; refuse it before anything touches it.
"""

import opcode
import sys
from pickle import UnpicklingError
from types import CodeType
from typing import Any

_op = opcode.opmap
_FORBIDDEN_NAMES = ("ENTER_EXECUTOR", "INSTRUMENTED_LINE", "INSTRUMENTED_INSTRUCTION")
FORBIDDEN_OPS: bytes = bytes(sorted(
    _op[n] for n in _FORBIDDEN_NAMES if n in _op and _op[n] < 256
))


def _cache_sizes() -> bytes:
    """Inline CACHE entries after each opcode byte (by its base form), as the interpreter
    skips them when it walks the bytecode; all zero before 3.11."""
    sizes = bytearray(256)
    entries = getattr(opcode, "_inline_cache_entries", None)
    if entries is None:
        return bytes(sizes)
    base_of = {}
    for base, specialized in getattr(opcode, "_specializations", {}).items():
        for name in specialized:
            base_of[name] = base
    all_ops = dict(getattr(opcode, "_specialized_opmap", {}))
    all_ops.update(_op)
    for op in range(256):
        name = opcode.opname[op]
        for candidate, value in all_ops.items():
            if value == op:
                name = candidate
                break
        base = base_of.get(name, name)
        if isinstance(entries, (list, tuple)):
            n = entries[_op[base]] if base in _op and _op[base] < len(entries) else 0
        else:  # a mapping by name (3.13+; a frozendict on 3.15)
            n = entries.get(base, 0)
        sizes[op] = n
    return bytes(sizes)


# Also the dump-side scanners' stride (_bytecode.CACHE_ENTRIES).
CACHE_SIZES: bytes = _cache_sizes()


def _first_forbidden(raw: bytes, ops: bytes = FORBIDDEN_OPS) -> int:
    """The first opcode of ``ops`` at an instruction position of ``raw``, or -1."""
    n = len(raw)
    i = 0
    while i < n:
        op = raw[i]
        if op in ops:
            return op
        i += 2 + 2 * CACHE_SIZES[op]
    return -1


# 3.14+: the compiler flags a docstring (inspect.CO_HAS_DOCSTRING), and making a function of a
# code object so flagged but without constants crashes 3.14 (it reads the docstring from the
# missing first constant without checking). The compiler never writes that combination.
CO_HAS_DOCSTRING: int = 0x4000000 if sys.version_info >= (3, 14) else 0


def check_loadable(code: CodeType) -> None:
    """Raise :class:`pickle.UnpicklingError` if ``code`` or code nested in it holds an opcode
    that would crash the interpreter when the code object is read, or would crash it when a
    function is made of it (see above)."""
    if code.co_flags & CO_HAS_DOCSTRING and not code.co_consts:
        raise UnpicklingError(
            f"corrupt code object in pickle: {code.co_name!r} is flagged as having a docstring "
            f"but holds no constants")
    if not FORBIDDEN_OPS:
        return
    # The interpreter's own copy, read without translation (co_code would translate).
    raw = code._co_code_adaptive  # type: ignore[attr-defined]
    for op in FORBIDDEN_OPS:
        if op in raw:  # rare: usually only a cache entry or argument has this byte value
            found = _first_forbidden(raw)
            if found >= 0:
                raise UnpicklingError(
                    f"corrupt code object in pickle: {code.co_name!r} holds opcode {found} "
                    f"({opcode.opname[found]}), which no marshalled code contains")
            break
    for const in code.co_consts:
        if type(const) is CodeType:
            check_loadable(const)


# 3.12 and 3.13 crash inside marshal.loads itself on the instrumentation opcodes (building the
# code object walks its bytecode), so there the marshal bytes are checked before loading.
PRELOAD_OPS: bytes = bytes(sorted(
    op for op in FORBIDDEN_OPS
    if sys.version_info[:2] in ((3, 12), (3, 13)) and opcode.opname[op].startswith("INSTRUMENTED")
))

_FLAG_REF = 0x80
_ATOMS = {ord(c): 0 for c in "0NFTS."}
_ATOMS.update({ord("i"): 4, ord("g"): 8, ord("y"): 16})
_SIZED = frozenset(ord(c) for c in "stuaA")        # int32 length, then the bytes
_SHORT_SIZED = frozenset(ord(c) for c in "zZf")     # one-byte length, then the bytes
_SEQUENCES = frozenset(ord(c) for c in "([<>")      # int32 count, then the items


class _Stream:
    __slots__ = ("data", "pos", "refs")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.refs: list = []

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise ValueError("truncated")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def int32(self) -> int:
        return int.from_bytes(self.take(4), "little", signed=True)


def _walk(s: _Stream, depth: int = 0) -> Any:
    """Read one marshalled object, checking the bytecode of every code object; returns the
    payload of a bytes object (for references to it), else None."""
    if depth > 200:
        raise ValueError("nested too deeply")
    code = s.take(1)[0]
    flag = code & _FLAG_REF
    code &= ~_FLAG_REF
    slot = -1
    if flag:
        slot = len(s.refs)
        s.refs.append(None)
    value = None
    if code in _ATOMS:
        s.take(_ATOMS[code])
    elif code == ord("l"):
        s.take(2 * abs(s.int32()))
    elif code in _SIZED:
        value = s.take(s.int32())
    elif code in _SHORT_SIZED:
        s.take(s.take(1)[0])
    elif code == ord("x"):
        s.take(s.take(1)[0])
        s.take(s.take(1)[0])
    elif code in _SEQUENCES or code == ord(")"):
        n = s.take(1)[0] if code == ord(")") else s.int32()
        for _ in range(n):
            _walk(s, depth + 1)
    elif code == ord("{"):
        while s.data[s.pos:s.pos + 1] not in (b"0", b""):
            _walk(s, depth + 1)
            _walk(s, depth + 1)
        s.take(1)
    elif code == ord(":"):
        for _ in range(3):
            _walk(s, depth + 1)
    elif code == ord("r"):
        index = s.int32()
        if not 0 <= index < len(s.refs):
            raise ValueError("bad reference")
        value = s.refs[index]
    elif code == ord("c"):
        s.take(20)  # argcount, posonlyargcount, kwonlyargcount, stacksize, flags
        raw = _walk(s, depth + 1)
        if type(raw) is bytes:
            found = _first_forbidden(raw, PRELOAD_OPS)
            if found >= 0:
                raise UnpicklingError(
                    f"corrupt code object in pickle: it holds opcode {found} "
                    f"({opcode.opname[found]}), which no marshalled code contains")
        for _ in range(7):  # consts, names, localsplus names and kinds, file, name, qualname
            _walk(s, depth + 1)
        s.take(4)  # firstlineno
        _walk(s, depth + 1)  # line table
        _walk(s, depth + 1)  # exception table
    else:
        raise ValueError(f"unknown marshal type {code!r}")
    if slot >= 0:
        s.refs[slot] = value
    return value


def check_marshal(data: Any) -> None:
    """Before ``marshal.loads`` on 3.12/3.13: refuse marshal bytes whose code objects hold an
    opcode that crashes the interpreter while the code object is built. Bytes this check
    cannot follow are left to marshal, which refuses them itself."""
    if not PRELOAD_OPS:
        return
    data = bytes(data)
    for op in PRELOAD_OPS:
        if op in data:  # otherwise no such byte anywhere: nothing to look at
            break
    else:
        return
    try:
        _walk(_Stream(data))
    except (ValueError, IndexError, OverflowError, RecursionError):
        pass

"""Load-side guard against bytecode that crashes the interpreter when merely read.

Some opcodes only ever exist in a running interpreter's private copy of the
bytecode (instrumentation for sys.monitoring, JIT executor entries): marshal never writes
them, because ``co_code`` translates them back first. A code object that holds one raw
cannot be translated back (3.12-3.15 dereference tables the code object does not have), so
merely reading its ``co_code``, ``replace()``-ing it or marshalling it kills the interpreter.
Such code can only come from damaged or forged bytes; refuse it before anything touches it.
"""

import opcode
from pickle import UnpicklingError
from types import CodeType

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


CACHE_SIZES: bytes = _cache_sizes() if FORBIDDEN_OPS else bytes(256)


def _first_forbidden(raw: bytes) -> int:
    """The first forbidden opcode at an instruction position of ``raw``, or -1."""
    n = len(raw)
    i = 0
    while i < n:
        op = raw[i]
        if op in FORBIDDEN_OPS:
            return op
        i += 2 + 2 * CACHE_SIZES[op]
    return -1


def check_loadable(code: CodeType) -> None:
    """Raise :class:`pickle.UnpicklingError` if ``code`` or code nested in it holds an opcode
    that would crash the interpreter when the code object is read (see above)."""
    if not FORBIDDEN_OPS:
        return
    # The interpreter's own copy, read without translation (co_code would translate).
    raw = code._co_code_adaptive
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

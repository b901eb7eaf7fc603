"""Load-side check of the code objects in a pickle: refuse code that CPython's compiler could
not have produced, before any CPython call reads or writes past a buffer because of it.

Why: marshal, the code constructor, ``code.replace()``, ``co_code``, the ``co_freevars``
getter and the interpreter trust what a code object holds. Bytes only a forger can make (the
CRC-32 in front of code bytes is easy to recompute) crash them while a code object is merely
*loaded* or looked at:

- an instruction without the inline cache entries CPython expects after it makes ``co_code``
  and ``replace()`` (3.11-3.15), and on 3.12/3.13 ``marshal.loads`` itself, write past the end
  of the bytecode;
- opcodes that only exist in a running interpreter's private copy of the bytecode
  (instrumentation for sys.monitoring, JIT executor entries) make 3.12-3.15 dereference tables
  the code object does not have as soon as it is built or read;
- a variable marked both free and local (or cell) makes ``co_freevars`` (3.11+; also read by
  ``replace()``) write past the tuple it fills;
- on 3.14+ a docstring flag without constants crashes making a function of the code.

So every code object, and every one in its constants, is held to what the compiler writes
(:func:`check_loadable`, run on what ``marshal.loads`` built, before anything else reads it):

- bytecode: not empty, whole code units; every instruction a real opcode (not a specialized,
  instrumented, executor or cache one, nor an undefined number) followed by all its inline cache
  entries, zero as the compiler writes them; EXTENDED_ARG never last;
- arguments: indexes into the constants, names and variables in range, COPY_FREE_VARS equal to
  the free variables; indexes into the interpreter's own tables (operators, comparisons,
  intrinsics, conversions, function attributes, common constants, special methods) in range;
- jumps and exception handlers landing on the start of an instruction inside the code;
- the line table and exception table well formed, the line table covering the bytecode exactly,
  exception entries in order and inside the bytecode, their stack depth within co_stacksize;
- the kind of every variable one the compiler writes (3.11+); on 3.10 co_nlocals matching
  co_varnames; on 3.14+ no docstring flag without constants.

On 3.12/3.13, where building the object already walks its bytecode, :func:`check_marshal`
screens the marshal bytes before ``marshal.loads``.

What passing does *not* promise: that the code is safe to *call*. The interpreter also trusts the
stack discipline of bytecode (how deep the stack gets, what each instruction finds on it) and its
control flow, which only the compiler's own analysis establishes; crafted bytecode that passes
can still crash the interpreter when it runs. That is why untrusted pickles must be signed.

Cost: per code object one regular-expression match over its bytecode, one over its line table,
one max() per group of index-taking opcodes and one marshal.dumps (3.11+, for the variable
kinds); what depends on the bytecode and tables alone is remembered per shape, so code objects
made from one template are compared, not checked again. Python loops run only over jumps,
EXTENDED_ARG prefixes and exception-table entries.
"""

import marshal
import opcode
import re
import struct
import sys
from itertools import compress
from pickle import UnpicklingError
from types import CodeType
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Pattern, Tuple

from ._format import MAX_CONST_DEPTH

_V = sys.version_info[:2]
_op = opcode.opmap
_NAME = {value: name for name, value in _op.items() if value < 256}


def _all_opcodes() -> Dict[str, int]:
    """Every opcode by name, specialized forms included (3.11+)."""
    if hasattr(opcode, "_specialized_opmap"):  # 3.13+
        ops = dict(opcode._specialized_opmap)
    else:  # 3.11/3.12 number them into the free slots, in order (as dis does)
        free = [o for o, name in enumerate(opcode.opname) if name.startswith("<")]
        ops = dict(zip(getattr(opcode, "_specialized_instructions", ()), free, strict=False))
    ops.update(_op)
    return ops


_ALL = _all_opcodes()
_ALL_NAME = {value: name for name, value in _ALL.items() if value < 256}


def _cache_sizes() -> bytes:
    """Inline CACHE entries after each opcode byte (specialized and instrumented forms count
    their base form's), as the interpreter skips them when it walks the bytecode; all zero
    before 3.11."""
    sizes = bytearray(256)
    entries = getattr(opcode, "_inline_cache_entries", None)
    if entries is None:
        return bytes(sizes)
    base_of = {}
    for base, specialized in getattr(opcode, "_specializations", {}).items():
        for name in specialized:
            base_of[name] = base
    for op, name in _ALL_NAME.items():
        base = base_of.get(name, name)
        # An instrumented form counts as its base: 3.12/3.13 translate it back (DE_INSTRUMENT)
        # when they walk the bytecode to build the code object.
        if base.startswith("INSTRUMENTED_") and base[13:] in _op:
            base = base[13:]
        if isinstance(entries, (list, tuple)):
            sizes[op] = entries[_op[base]] if base in _op and _op[base] < len(entries) else 0
        else:  # a mapping by name (3.13+; a frozendict on 3.15)
            sizes[op] = entries.get(base, 0)
    return bytes(sizes)


# Also the dump-side scanners' stride (_bytecode.CACHE_ENTRIES).
CACHE_SIZES: bytes = _cache_sizes()

# Opcodes the compiler never writes: the cache placeholder (it follows instructions, it is not
# one), instrumentation, JIT executor entries and trace recording (they only exist in a running
# interpreter's copy of the bytecode), the trampoline's exit and the reserved slot. Specialized
# forms and undefined numbers are not in opmap at all.
_RUNTIME_ONLY = ("CACHE", "ENTER_EXECUTOR", "TRACE_RECORD", "RESERVED", "INTERPRETER_EXIT")
_VALID: FrozenSet[int] = frozenset(
    value for value, name in _NAME.items()
    if name not in _RUNTIME_ONLY and not name.startswith("INSTRUMENTED_"))

# Every opcode byte refused at the start of an instruction (on every version some are, so the
# loaders, which skip the check when this is empty, always run it).
FORBIDDEN_OPS: bytes = bytes(sorted(set(range(256)) - _VALID))

# 3.12 and 3.13 walk the bytecode while marshal.loads builds a code object: there the loaders
# run check_marshal first (they skip it when this is empty). These two opcodes make that walk
# look up instrumentation data the object does not have.
PRELOAD_OPS: bytes = bytes(sorted(
    _op[n] for n in ("INSTRUMENTED_LINE", "INSTRUMENTED_INSTRUCTION")
    if n in _op and _op[n] < 256 and _V in ((3, 12), (3, 13))))

# 3.14+: the compiler flags a docstring (inspect.CO_HAS_DOCSTRING), and making a function of a
# code object so flagged but without constants crashes 3.14 (it reads the docstring from the
# missing first constant without checking). The compiler never writes that combination.
CO_HAS_DOCSTRING: int = 0x4000000 if _V >= (3, 14) else 0

_EXT: int = _op["EXTENDED_ARG"]

# --- What each instruction's argument means --------------------------------------------------

# How an argument is bounded:
_ANY = 0    # not an index (a count, flags, a jump distance: jumps are checked apart)
_CONST = 1  # index into co_consts
_NAMES = 2  # index into co_names, after a right shift (the low bits are flags)
_LOCAL = 3  # index into the frame's variables: co_varnames (3.10) or all of them (3.11+)
_CELL = 4   # 3.10: index into co_cellvars + co_freevars
_PAIR = 5   # two variable indexes of 4 bits each (3.13+ superinstructions)
_TABLE = 6  # index into a fixed table of the interpreter (operators, intrinsics, ...)
_NFREE = 7  # must be the number of free variables (COPY_FREE_VARS)

_KIND = bytearray(256)
_SHIFT = bytearray(256)
_TABLES: Dict[int, FrozenSet[int]] = {}  # _TABLE: the arguments the compiler writes
_PAIR_NAMES = ("LOAD_FAST_LOAD_FAST", "STORE_FAST_LOAD_FAST", "STORE_FAST_STORE_FAST",
               "LOAD_FAST_BORROW_LOAD_FAST_BORROW")


def _table(name: str, values: Iterable[int]) -> None:
    if name in _op and _op[name] in _VALID:
        _KIND[_op[name]] = _TABLE
        _TABLES[_op[name]] = frozenset(values)


def _classify() -> None:
    """Fill _KIND/_SHIFT/_TABLES the way dis decodes arguments on this version."""
    for op in _VALID:
        name = _NAME[op]
        if name in _PAIR_NAMES:
            _KIND[op] = _PAIR
        elif op in opcode.hasconst:
            _KIND[op] = _CONST
        elif op in opcode.hasname:
            _KIND[op] = _NAMES
            if (name == "LOAD_GLOBAL" and _V >= (3, 11)) or (name == "LOAD_ATTR" and _V >= (3, 12)):
                _SHIFT[op] = 1  # push NULL / method call
            elif name == "LOAD_SUPER_ATTR" or (name == "IMPORT_NAME" and _V >= (3, 15)):
                _SHIFT[op] = 2
        elif op in opcode.haslocal:
            _KIND[op] = _LOCAL
        elif op in opcode.hasfree:
            _KIND[op] = _CELL if _V < (3, 11) else _LOCAL
    if "COPY_FREE_VARS" in _op:
        _KIND[_op["COPY_FREE_VARS"]] = _NFREE
    # Arguments the interpreter uses to index its own C tables without a bounds check (an
    # operator's function, an intrinsic, a conversion, a function attribute's offset): out of
    # range, it calls or writes through whatever lies beyond.
    cmp_shift = 0 if _V < (3, 12) else 4 if _V == (3, 12) else 5
    _table("COMPARE_OP", range(len(opcode.cmp_op) << cmp_shift))
    _table("BINARY_OP", range(len(getattr(opcode, "_nb_ops", ()))))
    _table("CALL_INTRINSIC_1", range(len(getattr(opcode, "_intrinsic_1_descs", ()))))
    _table("CALL_INTRINSIC_2", range(len(getattr(opcode, "_intrinsic_2_descs", ()))))
    _table("LOAD_COMMON_CONSTANT", range(len(getattr(opcode, "_common_constants", ()))))
    _table("LOAD_SPECIAL", range(len(getattr(opcode, "_special_method_names", ()))))
    _table("CONVERT_VALUE", (1, 2, 3))  # str, repr, ascii (slot 0 is empty)
    _table("LOAD_SMALL_INT", range(256))  # the interpreter's cached small ints
    # One attribute at a time: defaults, kwdefaults, annotations, closure (3.14+: annotate).
    _table("SET_FUNCTION_ATTRIBUTE", [1 << i for i in range(5 if _V >= (3, 14) else 4)])


_classify()

# Jumps, decoded as dis does: target unit = next instruction (after the caches) +/- argument,
# or the argument itself for 3.10's absolute jumps.
_BACKWARD: FrozenSet[int] = frozenset(
    o for o in opcode.hasjrel
    if o in _VALID and ("JUMP_BACKWARD" in _NAME[o] or _NAME[o] == "END_ASYNC_FOR"))
_RELATIVE: FrozenSet[int] = frozenset(o for o in opcode.hasjrel if o in _VALID)
_ABSOLUTE: FrozenSet[int] = frozenset(o for o in opcode.hasjabs if o in _VALID)

# 3.12: building a code object fuses some instruction pairs into superinstructions in the
# interpreter's copy of the bytecode (undone in co_code). One stands where the first of its
# pair stood, so the second must follow: {superinstruction: (first, second)}.
_SUPERS: Dict[int, Tuple[int, int]] = {}
if _V == (3, 12):
    for _name, _value in _ALL.items():
        _first, _, _second = _name.partition("__")
        if _second and _first in _op and _second in _op and _value < 256:
            _SUPERS[_value] = (_op[_first], _op[_second])

# Variable kinds (3.11+, one byte per variable): the bits the compiler writes; a free variable
# is never also local or a cell (3.11-3.15 count it as one and list it as the other).
_FAST_FREE, _FAST_LOCAL_OR_CELL = 0x80, 0x60
_KIND_BITS = 0xE0 | (0x10 if _V >= (3, 12) else 0) | (0x0E if _V >= (3, 14) else 0)
_BAD_KINDS = bytes(
    k for k in range(256)
    if k & ~_KIND_BITS or not k & 0xE0 or (k & _FAST_FREE and k & _FAST_LOCAL_OR_CELL))


# --- Bytecode pattern ------------------------------------------------------------------------

def _byte_class(values: Iterable[int]) -> bytes:
    """A regular-expression class of the byte values, b"" if there are none."""
    vals = sorted(set(values))
    if not vals:
        return b""
    parts = []
    start = prev = vals[0]
    for v in vals[1:] + [-2]:
        if v != prev + 1:
            parts.append(b"\\x%02x" % start if start == prev
                         else b"\\x%02x-\\x%02x" % (start, prev))
            start = v
        prev = v
    return b"[" + b"".join(parts) + b"]"


def _arg_class(op: int) -> bytes:
    """The one-byte arguments the compiler could write for ``op`` in any code object (those
    indexing the code object's own tables are bounded apart, per code object)."""
    return _byte_class(_TABLES[op]) if _KIND[op] == _TABLE else b"[\\x00-\\xff]"


def _bytecode_pattern(adaptive: bool) -> "Pattern[bytes]":
    """Bytecode the compiler could write: valid opcodes, every inline cache entry present,
    table arguments in range. ``adaptive``: as the interpreter's own copy is right after the
    object was built (3.12+ rewrite every first cache entry, 3.12 fuses superinstructions),
    else as marshal and co_code hold it (cache entries zero)."""
    groups: Dict[Tuple[int, bytes, bytes], List[int]] = {}
    for op in sorted(_VALID | set(_SUPERS) if adaptive else _VALID):
        lookahead = b""
        if op in _SUPERS:
            first, second = _SUPERS[op]
            argc = _arg_class(first)
            follow = [second] + [s for s, pair in _SUPERS.items() if pair[0] == second]
            lookahead = b"(?=" + _byte_class(follow) + b")"
        else:
            argc = _arg_class(op)
            if op == _EXT:
                lookahead = b"(?=[\\x00-\\xff])"  # never last: it prefixes an instruction
        groups.setdefault((CACHE_SIZES[op], argc, lookahead), []).append(op)
    branches = []
    # The largest groups first: the engine tries the branches in order.
    for (ncache, argc, lookahead), ops in sorted(groups.items(), key=lambda g: -len(g[1])):
        if ncache == 0:
            caches = b""
        elif adaptive and _V >= (3, 12):
            caches = b"[\\x00-\\xff]{2}" + (b"\\x00{%d}" % (2 * ncache - 2) if ncache > 1 else b"")
        else:
            caches = b"\\x00{%d}" % (2 * ncache)
        branches.append(_byte_class(ops) + argc + caches + lookahead)
    # Possessive where the engine has it (3.11+): every instruction's first byte picks its
    # branch, so there is nothing to backtrack into, and it halves the time.
    repeat = b")++" if _V >= (3, 11) else b")+"
    return re.compile(b"(?:" + b"|".join(branches) + repeat, re.DOTALL)


# On 3.11+ the check reads the interpreter's own copy (_co_code_adaptive): co_code would
# translate it back first, which is what writes past the buffer.
_ADAPTIVE = _V >= (3, 11)
_PATTERNS: Dict[bool, "Pattern[bytes]"] = {}  # compiled on first use (import stays cheap)


def _pattern(adaptive: bool) -> "Pattern[bytes]":
    pattern = _PATTERNS.get(adaptive)
    if pattern is None:
        pattern = _PATTERNS[adaptive] = _bytecode_pattern(adaptive)
    return pattern


# Jumps and EXTENDED_ARG prefixes: the instructions the Python loop looks at.
_SLOW_OPS = re.compile(_byte_class(_RELATIVE | _ABSOLUTE | {_EXT}))
_NOT_SLOW = bytes(sorted(set(range(256)) - _RELATIVE - _ABSOLUTE - {_EXT}))

# Arguments indexing the code object's tables, by (kind, shift): per group its code in
# _GROUP_OF (to skip absent groups) and a selector (1 for its opcodes) picking its arguments
# out of the bytecode for one max() each.
_GROUPS: List[Tuple[int, bytes, int, int]] = []
_group_of = bytearray(256)
for _kind in (_CONST, _NAMES, _LOCAL, _CELL, _PAIR, _NFREE):
    for _shift in (0, 1, 2):
        _members = [o for o in _VALID if _KIND[o] == _kind and _SHIFT[o] == _shift]
        if _members:
            for _o in _members:
                _group_of[_o] = len(_GROUPS) + 1
            _GROUPS.append((len(_GROUPS) + 1, bytes(o in _members for o in range(256)),
                            _kind, _shift))
_GROUP_OF = bytes(_group_of)
_LOW_NIBBLE = bytes(b & 15 for b in range(256))

# --- Tables for a compiled copy of the check ---------------------------------------------------

def _fast_tables() -> bytes:
    """The tables above in one flat block, for a compiled copy of check_loadable (the compiled
    loader's fast path: it accepts what it can prove sound and leaves everything else to
    check_loadable, which decides and words the refusal). Ten 256-byte rows by opcode or kind
    byte, then one 32-byte bit set of allowed arguments per opcode:

    0 valid at an instruction in the interpreter's copy (3.12: with superinstructions)
    1 inline cache entries   2 argument kind (_ANY, _CONST, ...)   3 right shift of the index
    4 jump: 1 forward, 2 backward, 3 absolute   5/6 superinstruction's first/second opcode
    7 variable kind refused   8 EXTENDED_ARG (1 at its opcode)   9 PRELOAD_OPS (1 at each)
    """
    rows = [bytearray(256) for _ in range(10)]
    for op in _VALID | set(_SUPERS):
        rows[0][op] = 1
    rows[1][:] = CACHE_SIZES
    rows[2][:] = _KIND
    rows[3][:] = _SHIFT
    for op in _RELATIVE:
        rows[4][op] = 2 if op in _BACKWARD else 1
    for op in _ABSOLUTE:
        rows[4][op] = 3
    for op, (first, second) in _SUPERS.items():
        rows[5][op] = first
        rows[6][op] = second
    for k in _BAD_KINDS:
        rows[7][k] = 1
    rows[8][_EXT] = 1
    for op in PRELOAD_OPS:
        rows[9][op] = 1
    bits = bytearray(256 * 32)
    for op, allowed in _TABLES.items():
        for arg in allowed:
            bits[op * 32 + (arg >> 3)] |= 1 << (arg & 7)
    return b"".join(bytes(r) for r in rows) + bytes(bits)


FAST_TABLES: bytes = _fast_tables()


# --- Line and exception tables ---------------------------------------------------------------

if _V >= (3, 11):
    # Location entries (Objects/locations.md): a header byte 1cccclll (code c, l+1 code units),
    # then by code: one byte (0-9), two (10-12), one signed varint (13), four varints (14),
    # nothing (15). Varints are 6-bit chunks, bit 6 set on all but the last byte.
    _VARINT = b"[\\x40-\\x7f]{0,5}[\\x00-\\x3f]"
    _LINETABLE = re.compile(
        b"(?:[\\x80-\\xcf][\\x00-\\x7f]|[\\xd0-\\xe7][\\x00-\\x7f]{2}|[\\xe8-\\xef]" + _VARINT
        + b"|[\\xf0-\\xf7](?:" + _VARINT + b"){4}|[\\xf8-\\xff])*+", re.DOTALL)
    # Code units each header byte accounts for (other bytes: none).
    _LINE_UNITS = bytes((b & 7) + 1 if b & 0x80 else 0 for b in range(256))
    # Exception entries: start, length, target, depth<<1|lasti, varints as above with bit 7
    # set on the first byte of an entry only.
    _EXC_ITEM = b"[\\x40-\\x7f]{0,4}[\\x00-\\x3f]"
    _EXC_FIRST = b"(?:[\\xc0-\\xff][\\x40-\\x7f]{0,4}[\\x00-\\x3f]|[\\x80-\\xbf])"
    _EXC_ENTRY = re.compile(b"(" + _EXC_FIRST + b")(" + _EXC_ITEM + b")(" + _EXC_ITEM + b")("
                            + _EXC_ITEM + b")", re.DOTALL)
    _EXC_TABLE = re.compile(b"(?:" + _EXC_FIRST + b"(?:" + _EXC_ITEM + b"){3})*+", re.DOTALL)


def _varint(chunk: bytes) -> int:
    value = 0
    for b in chunk:
        value = value << 6 | (b & 63)
    return value


# --- The check -------------------------------------------------------------------------------

# What each bytecode shape already checked needs of the tables of its code object, by (bytecode,
# line table, exception table): code objects made from one template (generated tasks, lambdas
# written in a loop) are checked once and then compared in a few steps. Bounded; cleared when
# full. A value: the least number of constants, names, variable slots, 3.10 cell and free
# variables the bytecode indexes; the number of free variables it copies (-1: none); the stack
# depth its exception handlers need.
_SHAPES: Dict[Tuple[bytes, ...], Tuple[int, int, int, int, int, int]] = {}
_SHAPES_MAX = 4096
_CONSTS, _NAMES_, _SLOTS, _CELLS, _FREE, _STACK = range(6)

# Code objects and constant containers nested in each other: the loaders' limit (see there).
_MAX_NESTING = MAX_CONST_DEPTH
# Types that are, or can hold, a code object in constants (slices: 3.14+).
_NESTING_TYPES = frozenset((CodeType, tuple, frozenset, slice))


def _refuse(code: CodeType, problem: str) -> UnpicklingError:
    name = getattr(code, "co_qualname", None) or code.co_name
    return UnpicklingError(f"corrupt code object in pickle: {name!r} {problem}")


def check_loadable(code: CodeType, depth: int = 0) -> None:
    """Raise :class:`pickle.UnpicklingError` unless ``code`` and every code object in its
    constants could have come from CPython's compiler (see the module docstring for what is
    checked). Run on a code object marshal just built, before anything else reads it."""
    consts = code.co_consts
    if _ADAPTIVE:
        # The interpreter's own copy: co_code would translate it back first, and translating
        # is what writes past the buffer.
        raw = code._co_code_adaptive  # type: ignore[attr-defined]
        table = code.co_exceptiontable  # type: ignore[attr-defined]
        key: Tuple[bytes, ...] = (raw, code.co_linetable, table)
    else:
        raw = code.co_code
        key = (raw, code.co_linetable)
    need = _SHAPES.get(key)
    if need is None:
        need = _shape_needs(code, raw)
        if len(_SHAPES) >= _SHAPES_MAX:
            _SHAPES.clear()
        _SHAPES[key] = need
    if code.co_flags & CO_HAS_DOCSTRING and not consts:
        raise _refuse(code, "is flagged as having a docstring but holds no constants")
    if not _NESTING_TYPES.isdisjoint(map(type, consts)):
        if depth >= _MAX_NESTING:
            raise _refuse(code, "is nested too deeply in other code objects")
        for inner in _code_in(consts, depth):
            check_loadable(inner, depth + 1)
    if _ADAPTIVE:
        # After the nested code objects: reading the kinds dumps them. Until the kinds are
        # known good, co_freevars must not be read (it is what writes past its tuple).
        kinds = _kinds(code, len(raw))
        if kinds.translate(None, _NOT_BAD_KINDS):
            raise _refuse(code, "has a variable of a kind the compiler never writes")
        nfree = len(kinds) - len(kinds.translate(None, _FREE_KINDS))
        limits = (len(consts), len(code.co_names), len(kinds), 0, nfree)
    else:
        nlocals = code.co_nlocals
        if nlocals != len(code.co_varnames):  # 3.10 sizes the frame by co_nlocals
            raise _refuse(code, f"has {nlocals} locals but {len(code.co_varnames)} names")
        nfree = len(code.co_freevars)
        limits = (len(consts), len(code.co_names), nlocals, len(code.co_cellvars) + nfree,
                  nfree)
    if (need[_CONSTS] > limits[0] or need[_NAMES_] > limits[1] or need[_SLOTS] > limits[2]
            or need[_CELLS] > limits[3] or need[_FREE] not in (-1, nfree)):
        normal = code.co_code if _V >= (3, 12) else raw  # (safe: the shape is sound)
        raise _refuse(code, _index_problem(normal, limits))
    if need[_STACK] > code.co_stacksize:
        raise _refuse(code, "has an exception handler deeper than its stack")


def _code_in(container: Any, depth: int) -> List[CodeType]:
    """The code objects in ``container``, a constant, however deep in tuples, frozensets and
    slices (marshal can hide code there; the compiler does not, but whatever reads it later is
    as exposed as to any other code object)."""
    found = []
    stack = [(container, depth)]
    while stack:
        value, level = stack.pop()
        if level > _MAX_NESTING:
            raise UnpicklingError("corrupt code object in pickle: constants nested too deeply")
        for item in value:
            t = type(item)
            if t is CodeType:
                found.append(item)
            elif t is tuple or t is frozenset:
                stack.append((item, level + 1))
            elif t is slice:
                stack.append(((item.start, item.stop, item.step), level + 1))
    return found


def _shape_needs(code: CodeType, raw: bytes) -> Tuple[int, int, int, int, int, int]:
    """Check what depends on the bytecode, line and exception tables alone; return what the
    shape needs of the code object's tables (a _SHAPES value)."""
    if not raw or _pattern(_ADAPTIVE).fullmatch(raw) is None:
        raise _refuse(code, _diagnose(raw, _ADAPTIVE))
    # From here the structure is sound, so co_code is safe to read: the bytecode with every
    # cache entry zeroed, so that any non-zero opcode byte starts an instruction (3.12+
    # quickening writes counters into the interpreter's copy).
    normal = code.co_code if _V >= (3, 12) else raw
    ops = normal[::2]
    args = normal[1::2]
    need = [0, 0, 0, 0, -1, 0]
    present = ops.translate(_GROUP_OF)
    for group, selector, kind, shift in _GROUPS:
        if group not in present:
            continue
        picked = ops.translate(selector)
        if kind == _NFREE:  # COPY_FREE_VARS, once per closure: its full argument, exactly
            values = {_full_arg(ops, args, i) for i in range(len(ops)) if picked[i]}
            if len(values) > 1:
                raise _refuse(code, "copies different numbers of free variables")
            need[_FREE] = values.pop()
            continue
        top = max(compress(args, picked))
        if kind == _CONST:
            need[_CONSTS] = max(need[_CONSTS], top + 1)
        elif kind == _NAMES:
            need[_NAMES_] = max(need[_NAMES_], (top >> shift) + 1)
        elif kind == _LOCAL:
            need[_SLOTS] = max(need[_SLOTS], top + 1)
        elif kind == _CELL:
            need[_CELLS] = max(need[_CELLS], top + 1)
        else:  # _PAIR
            low = max(compress(args.translate(_LOW_NIBBLE), picked))
            need[_SLOTS] = max(need[_SLOTS], (top >> 4) + 1, low + 1)
    if ops.translate(None, _NOT_SLOW):  # jumps or EXTENDED_ARG: one by one
        problem = _check_jumps_and_prefixed(normal, need)
        if problem:
            raise _refuse(code, problem)
    table = code.co_linetable
    if _V >= (3, 11):
        if _LINETABLE.fullmatch(table) is None:
            raise _refuse(code, "has a malformed line table")
        if sum(table.translate(_LINE_UNITS)) != len(raw) >> 1:
            raise _refuse(code, "has a line table that does not cover its bytecode exactly")
        exceptions = code.co_exceptiontable  # type: ignore[attr-defined]
        if exceptions:
            problem = _check_exceptions(exceptions, normal, need)
            if problem:
                raise _refuse(code, problem)
    elif len(table) & 1 or sum(table[::2]) != len(raw):
        raise _refuse(code, "has a line table that does not cover its bytecode exactly")
    return need[0], need[1], need[2], need[3], need[4], need[5]


def _index_problem(normal: bytes, limits: Tuple[int, int, int, int, int]) -> str:
    """Which instruction indexes past the code object's tables (the failure path)."""
    ops = normal[::2]
    args = normal[1::2]
    for i in range(len(ops)):
        if _KIND[ops[i]] not in (_ANY, _TABLE):
            arg = _full_arg(ops, args, i)
            problem = _arg_problem(ops[i], arg, limits)
            if problem:
                return _at(ops[i], arg, i, problem)
    return "indexes past its tables"


def _full_arg(ops: bytes, args: bytes, i: int) -> int:
    """The argument of the instruction at unit ``i``, EXTENDED_ARG prefixes included."""
    arg = args[i]
    shift = 8
    j = i - 1
    while j >= 0 and ops[j] == _EXT:
        arg |= args[j] << shift
        shift += 8
        j -= 1
    return arg


def _arg_problem(op: int, arg: int, limits: Tuple[int, int, int, int, int]) -> str:
    """What is wrong with ``arg`` (any size) for ``op``, or ""."""
    kind = _KIND[op]
    nconsts, nnames, nlocals, ncells, nfree = limits
    if kind == _CONST and arg >= nconsts:
        return f"past its {nconsts} constants"
    if kind == _NAMES and arg >> _SHIFT[op] >= nnames:
        return f"past its {nnames} names"
    if (kind == _LOCAL and arg >= nlocals) or (
            kind == _PAIR and (arg >> 4 >= nlocals or arg & 15 >= nlocals or arg > 255)):
        return f"past its {nlocals} variables"
    if kind == _CELL and arg >= ncells:
        return f"past its {ncells} cell and free variables"
    if kind == _TABLE and arg not in _TABLES[op]:
        return "an argument the compiler never writes"
    if kind == _NFREE and arg != nfree:
        return f"but it has {nfree} free variables"
    return ""


def _at(op: int, arg: int, unit: int, problem: str) -> str:
    return f"holds {_ALL_NAME.get(op, op)} {arg} at offset {2 * unit}, {problem}"


def _starts_instruction(ops: bytes, unit: int) -> bool:
    """In ``normal`` bytecode: ``unit`` is inside it, not a cache entry (their opcode byte is
    zero), nor an instruction after its EXTENDED_ARG prefix (a jump lands on the prefix)."""
    return 0 <= unit < len(ops) and ops[unit] != 0 and (unit == 0 or ops[unit - 1] != _EXT)


def _check_jumps_and_prefixed(normal: bytes, need: List[int]) -> str:
    """Jump targets, and the full arguments of EXTENDED_ARG-prefixed instructions (into
    ``need``), in ``normal`` (sound structure, cache entries zero: every non-zero opcode byte
    starts an instruction). Returns what is wrong, or ""."""
    ops = normal[::2]
    args = normal[1::2]
    for m in _SLOW_OPS.finditer(ops):
        i = m.start()
        op = ops[i]
        if op == _EXT:
            nxt = i + 1  # the instruction it prefixes (the pattern has put one there)
            op = ops[nxt]
            if op == _EXT or op in _RELATIVE or op in _ABSOLUTE:
                continue  # a longer prefix, or a jump: looked at at its own match
            arg = _full_arg(ops, args, nxt)
            kind = _KIND[op]
            if kind == _CONST:
                need[_CONSTS] = max(need[_CONSTS], arg + 1)
            elif kind == _NAMES:
                need[_NAMES_] = max(need[_NAMES_], (arg >> _SHIFT[op]) + 1)
            elif kind == _LOCAL:
                need[_SLOTS] = max(need[_SLOTS], arg + 1)
            elif kind == _CELL:
                need[_CELLS] = max(need[_CELLS], arg + 1)
            elif kind == _PAIR or kind == _TABLE:  # a byte-sized argument: never prefixed
                return _at(op, arg, nxt, "an argument the compiler never writes")
            continue
        target = _jump_target(op, i, _full_arg(ops, args, i))
        if not _starts_instruction(ops, target):
            return (f"holds {_ALL_NAME.get(op, op)} at offset {2 * i} jumping to offset "
                    f"{2 * target}, which does not start one of its instructions")
    return ""


def _jump_target(op: int, i: int, arg: int) -> int:
    """The code unit a jump at unit ``i`` goes to, as dis computes it."""
    if op in _ABSOLUTE:
        return arg
    if op in _BACKWARD:
        return i + 1 + CACHE_SIZES[op] - arg
    return i + 1 + CACHE_SIZES[op] + arg


def _check_exceptions(table: bytes, normal: bytes, need: List[int]) -> str:
    """The exception table: well formed, entries in order inside the bytecode, handlers at the
    start of an instruction; their stack depth goes into ``need``. Returns what is wrong, or
    ""."""
    if _EXC_TABLE.fullmatch(table) is None:
        return "has a malformed exception table"
    ops = normal[::2]
    done = 0
    for m in _EXC_ENTRY.finditer(table):
        start, size, target, depth_lasti = [_varint(g) for g in m.groups()]
        if start < done or size < 1 or start + size > len(ops):
            return "has an exception table entry outside its bytecode or out of order"
        if not _starts_instruction(ops, target):
            return "has an exception handler that does not start an instruction"
        need[_STACK] = max(need[_STACK], depth_lasti >> 1)
        done = start + size
    return ""


def _diagnose(raw: bytes, adaptive: bool) -> str:
    """Why ``raw`` does not match the bytecode pattern (the failure path: a Python walk)."""
    if not raw:
        return "has no bytecode"
    if len(raw) & 1:
        return f"has bytecode of odd length {len(raw)}"
    n = len(raw)
    i = 0
    while i < n:
        op = raw[i]
        name = _ALL_NAME.get(op, f"<{op}>")
        if op not in _VALID and not (adaptive and op in _SUPERS):
            what = ("a specialized" if op in _ALL_NAME and op not in _NAME else
                    "a runtime-only" if op in _NAME else "an undefined")
            return f"holds {what} opcode {op} ({name}) at offset {i}"
        ncache = CACHE_SIZES[op]
        end = i + 2 + 2 * ncache
        if end > n:
            return (f"ends with {name} at offset {i} without the {ncache} inline cache "
                    f"entries that must follow it")
        if op == _EXT and end == n:
            return f"ends with {name}, which must prefix an instruction"
        caches = raw[i + 2:end]
        if adaptive and _V >= (3, 12):
            caches = caches[2:]  # the first is the interpreter's counter
        if caches.strip(b"\x00"):
            return f"holds {name} at offset {i} with non-zero inline cache entries"
        if op in _SUPERS:
            first, second = _SUPERS[op]
            follower = raw[end] if end < n else -1
            if follower != second and _SUPERS.get(follower, (-1,))[0] != second:
                return f"holds {name} at offset {i} without its second instruction"
            op = first
        if _KIND[op] == _TABLE and raw[i + 1] not in _TABLES[op]:
            return _at(op, raw[i + 1], i >> 1, "an argument the compiler never writes")
        i = end
    return "has malformed bytecode"


# --- Variable kinds (3.11+) ------------------------------------------------------------------

def _kinds(code: CodeType, nbytes: int) -> bytes:
    """3.11+: the kind byte of each of the variables of ``code`` (``nbytes`` of bytecode).

    Only marshal shows them: the code object's own dump (version 2: no back-references, one
    layout), whose fields before the kinds are skipped by their lengths. Its bytecode and its
    nested code objects have passed by now, so dumping it is safe. Constants version 2 cannot
    write (3.14+ slices) leave it to an exact walk of a dump in the current version.
    """
    if KINDS_READER is not None:
        return KINDS_READER(code)
    try:
        dump = marshal.dumps(code, 2)
    except ValueError:
        s = _Stream(marshal.dumps(code))
        s.kinds = []
        _walk(s, bytecode=False)
        return s.kinds[-1]  # the outermost code object's, read last
    # Type, five int32s, the bytecode ("s", int32, its bytes), the constants, the names; then
    # the variable names: "(", int32 count, "u" strings; then the kinds: "s", int32, bytes.
    dumps = marshal.dumps
    pos = 26 + nbytes + len(dumps(code.co_consts, 2)) + len(dumps(code.co_names, 2))
    count = _int32(dump, pos + 1)[0]
    pos += 5
    for _ in range(count):
        pos += 5 + _int32(dump, pos + 1)[0]
    if dump[pos] != 0x73 or _int32(dump, pos + 1)[0] != count:
        raise UnpicklingError("corrupt code object in pickle: unreadable variable kinds")
    return dump[pos + 5:pos + 5 + count]


_int32 = struct.Struct("<i").unpack_from

# A faster way to the kinds, for a compiled loader that can read them off the code object:
# called with the code object, returns its co_localspluskinds bytes.
KINDS_READER: Optional[Callable[[CodeType], bytes]] = None
_NOT_BAD_KINDS = bytes(sorted(set(range(256)) - set(_BAD_KINDS)))
_FREE_KINDS = bytes(range(0x80, 0x100))


# --- Marshal bytes (3.12/3.13) -----------------------------------------------------------------

# 3.12 and 3.13 already walk the bytecode while marshal.loads builds a code object: they write
# the first cache entry of every instruction that has some (past the end, if the last one
# lacks them) and look up INSTRUMENTED_LINE/INSTRUMENTED_INSTRUCTION in data the object does not
# have. Those are the only dangers before check_loadable can look, so the screen finds every
# code object in the marshal bytes and looks at its bytecode's last instruction and for those
# two bytes; anything it cannot rule out quickly is walked exactly (_walk).
#
# A code object is "c" (0xe3 with the reference flag), five int32 fields, then its bytecode,
# which must be bytes for the constructor to get as far as walking it: inline ("s", 0xf3) or a
# back-reference ("r", 0xf2, then an int32 index below the count of objects read before) to
# bytes read earlier. The pattern finds every such start; false starts inside other data
# only cost an exact walk when they look dangerous.
_CODE_START = re.compile(b"[c\\xe3][\\x00-\\xff]{20}[s\\xf3r\\xf2]", re.DOTALL)
_PRELOAD_BYTES = re.compile(_byte_class(PRELOAD_OPS) or b"(?!)")


def check_marshal(data: Any) -> None:
    """Before ``marshal.loads`` on 3.12/3.13: raise :class:`pickle.UnpicklingError` if building
    a code object of ``data`` (bytes or a memoryview) could write past its bytecode or read
    instrumentation data it does not have."""
    if not PRELOAD_OPS:
        return
    search = _CODE_START.search
    end = len(data)
    m = search(data)
    while m is not None:
        start = m.start()
        kind = data[start + 21]
        size = int.from_bytes(data[start + 22:start + 26], "little", signed=True)
        if kind == 0x72 or kind == 0xF2:
            # Bytecode by back-reference: followed exactly, unless the index cannot name an
            # object read before (each takes at least a byte): then this is no code object.
            if 0 <= size < start and start + 26 <= end:
                _walk_exactly(data)
                return
            m = search(data, start + 1)
            continue
        stop = start + 26 + size
        if 2 <= size and stop <= end and (
                CACHE_SIZES[data[stop - 2]]
                or _PRELOAD_BYTES.search(data, start + 26, stop) is not None):
            _walk_exactly(data)
            return
        m = search(data, start + 1)


_FLAG_REF = 0x80
_ATOMS = {ord(c): 0 for c in "0NFTS."}
_ATOMS.update({ord("i"): 4, ord("g"): 8, ord("y"): 16})
_SIZED = frozenset(ord(c) for c in "stuaA")        # int32 length, then the bytes
_SHORT_SIZED = frozenset(ord(c) for c in "zZ")      # one-byte length, then the bytes
_SEQUENCES = frozenset(ord(c) for c in "([<>")      # int32 count, then the items


class _Stream:
    __slots__ = ("data", "pos", "refs", "kinds")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.refs: List[Any] = []
        self.kinds: Optional[List[Any]] = None  # collects every code object's kinds field

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise ValueError("truncated")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def int32(self) -> int:
        return int.from_bytes(self.take(4), "little", signed=True)


def _walk_exactly(data: Any) -> None:
    try:
        _walk(_Stream(bytes(data)))
    except UnpicklingError:
        raise
    except (ValueError, IndexError, OverflowError, RecursionError) as exc:
        # Marshal would fail here too, but it may already have built (and so walked) code
        # objects this walk could not reach: refuse rather than let it try.
        raise UnpicklingError(f"corrupt code object in pickle: unreadable marshal data ({exc})"
                              ) from None


def _walk(s: _Stream, depth: int = 0, bytecode: bool = True) -> Any:
    """Read one marshalled object as marshal does (3.11+ layout of code objects), checking the
    bytecode of every code object (``bytecode``) and collecting their variable kinds (when
    ``s.kinds`` is a list). Returns a bytes object's payload or a str's text, else None."""
    if depth > 200:
        raise ValueError("nested too deeply")
    code = s.take(1)[0]
    flag = code & _FLAG_REF
    code &= ~_FLAG_REF
    if code == ord("r"):  # marshal gives a reference no slot of its own, flagged or not
        index = s.int32()
        if not 0 <= index < len(s.refs):
            raise ValueError("bad reference")
        return s.refs[index]
    slot = -1
    if flag:  # numbered before its contents, as marshal numbers them
        slot = len(s.refs)
        s.refs.append(None)
    value: Any = None
    if code in _ATOMS:
        s.take(_ATOMS[code])
    elif code == ord("l"):
        s.take(2 * abs(s.int32()))
    elif code in _SIZED:
        value = s.take(s.int32())
        if code != ord("s"):  # a str: its text, to name a code object
            value = value.decode("utf-8", "replace")
    elif code in _SHORT_SIZED:
        value = s.take(s.take(1)[0]).decode("latin-1")
    elif code == ord("f"):
        s.take(s.take(1)[0])
    elif code == ord("x"):
        s.take(s.take(1)[0])
        s.take(s.take(1)[0])
    elif code in _SEQUENCES or code == ord(")"):
        n = s.take(1)[0] if code == ord(")") else s.int32()
        for _ in range(n):
            _walk(s, depth + 1, bytecode)
    elif code == ord("{"):
        while s.data[s.pos:s.pos + 1] not in (b"0", b""):
            _walk(s, depth + 1, bytecode)
            _walk(s, depth + 1, bytecode)
        s.take(1)
    elif code == ord(":"):
        for _ in range(3):
            _walk(s, depth + 1, bytecode)
    elif code == ord("c"):
        s.take(20)  # argcount, posonlyargcount, kwonlyargcount, stacksize, flags
        raw = _walk(s, depth + 1, bytecode)
        # consts, names, variable names and kinds, file name, name, qualified name
        fields = [_walk(s, depth + 1, bytecode) for _ in range(7)]
        s.take(4)  # firstlineno
        _walk(s, depth + 1, bytecode)  # line table
        _walk(s, depth + 1, bytecode)  # exception table
        if s.kinds is not None:
            s.kinds.append(fields[3])
        if bytecode and type(raw) is bytes and len(raw) >= 2 and not len(raw) & 1:
            # Bytes the constructor accepts; anything else it refuses before walking them.
            if _pattern(False).fullmatch(raw) is None:
                qualname = fields[6] if type(fields[6]) is str else "?"
                raise UnpicklingError(f"corrupt code object in pickle: {qualname!r} "
                                      + _diagnose(raw, False))
    else:
        raise ValueError(f"unknown marshal type {code!r}")
    if slot >= 0:
        s.refs[slot] = value
    return value

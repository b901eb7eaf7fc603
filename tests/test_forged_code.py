"""Forged code objects: refused on load with ``UnpicklingError``, never a crash, on every minor.

A pickle carries each function's code as marshal bytes behind a CRC-32, which anyone can
recompute. These tests forge the bytes the way an attacker would (bytecode without the inline
cache entries after its last instruction, undefined, specialized or instrumented opcodes,
indexes past the constants, names or variables, jumps out of the code, damaged line and
exception tables, the same inside nested code objects) and load each pickle in a child process
under ``PYTHONMALLOC=debug``, whose allocator aborts on a write past a block ("bad trailing pad
byte"). Every one must be refused with ``pickle.UnpicklingError``: never a signal, an abort or a
``SystemError``. Code CPython's compiler wrote, all of it from several stdlib modules, must still
load (no false positives).

The forged bytes are made by editing the marshal stream of a real function (a small reader and
writer for the format marshal writes), never by building the forged code object: this process
never holds one, so making the payloads cannot crash it; only the children load them.
"""

import io
import marshal
import struct
import subprocess
import sys
import types
from typing import Any, Callable, Dict, List, Optional, Tuple

from fastfnpickle import _codecheck
from fastfnpickle._format import seal, unseal

V = sys.version_info[:2]

# --- The marshal format of code objects (what marshal.dumps(code, 2) writes) ------------------

# Fields after the type byte, in order: "i" an int32, anything else a marshalled object.
if V >= (3, 11):
    FIELDS = ("argcount:i", "posonlyargcount:i", "kwonlyargcount:i", "stacksize:i", "flags:i",
              "code", "consts", "names", "localsplusnames", "localspluskinds", "filename",
              "name", "qualname", "firstlineno:i", "linetable", "exceptiontable")
else:
    FIELDS = ("argcount:i", "posonlyargcount:i", "kwonlyargcount:i", "nlocals:i",
              "stacksize:i", "flags:i", "code", "consts", "names", "varnames", "freevars",
              "cellvars", "filename", "name", "firstlineno:i", "linetable")


class Code:
    """A code object as marshal fields, nested code objects (in constants) as Code too."""

    def __init__(self, fields: Dict[str, Any]) -> None:
        self.fields = fields

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.fields[name] = value


def _read(f: io.BytesIO) -> Any:
    kind = f.read(1)[0] & 0x7F
    if kind == ord("c"):
        fields: Dict[str, Any] = {}
        for spec in FIELDS:
            name, _, fmt = spec.partition(":")
            fields[name] = struct.unpack("<i", f.read(4))[0] if fmt else _read(f)
        return Code(fields)
    if kind == ord("("):
        return tuple(_read(f) for _ in range(struct.unpack("<i", f.read(4))[0]))
    f.seek(-1, io.SEEK_CUR)
    return marshal.load(f)  # a plain value of legitimate code: safe to build


def parse(body: bytes) -> Code:
    code = _read(io.BytesIO(body))
    assert isinstance(code, Code)
    return code


class Flagged:
    """A value written with marshal's reference flag (the next reference index is its own)."""

    def __init__(self, value: bytes) -> None:
        self.value = value


class Ref:
    """A back-reference ("r") to the ``index``-th flagged value written before it."""

    def __init__(self, index: int) -> None:
        self.index = index


def dump(value: Any) -> bytes:
    if isinstance(value, Flagged):
        plain = dump(value.value)
        return bytes([plain[0] | 0x80]) + plain[1:]
    if isinstance(value, Ref):
        return b"r" + struct.pack("<i", value.index)
    if isinstance(value, Code):
        out = [b"c"]
        for spec in FIELDS:
            name, _, fmt = spec.partition(":")
            out.append(struct.pack("<i", value[name]) if fmt else dump(value[name]))
        return b"".join(out)
    if type(value) is tuple:
        return b"(" + struct.pack("<i", len(value)) + b"".join(dump(v) for v in value)
    return marshal.dumps(value, 2)


def instructions(code: Code) -> List[Tuple[int, str, int]]:
    """(offset, opname, argument byte) of each instruction of legitimate bytecode."""
    raw = code["code"]
    out = []
    i = 0
    while i < len(raw):
        out.append((i, _codecheck._ALL_NAME.get(raw[i], "?"), raw[i + 1]))
        i += 2 + 2 * _codecheck.CACHE_SIZES[raw[i]]
    return out


def find(code: Code, *names: str) -> int:
    """Offset of the first instruction named one of ``names``."""
    for offset, name, _ in instructions(code):
        if name in names:
            return offset
    raise AssertionError(f"no {names} in {instructions(code)}")


def with_arg(code: Code, offset: int, arg: int) -> None:
    raw = bytearray(code["code"])
    raw[offset + 1] = arg
    code["code"] = bytes(raw)


def op(name: str) -> int:
    return _codecheck._ALL[name]


# --- Functions to forge ------------------------------------------------------------------------

# Defined in a module nothing can import, so they pickle by value.
TARGETS_SOURCE = """
def target_simple(x):
    return helper(x.attr) + x * 3 - 2.5

def target_try(x):
    try:
        return x[0] if x else None
    except (KeyError, IndexError):
        return len(x)

def target_nested(a):
    def inner(b):
        return helper(a, b).attr
    return inner

def target_two_free(a, c):
    def inner(b):
        return a + b + c
    return inner

def target_module_level():
    return "a constant"

def target_loop(n):
    total = 0
    for i in range(n):
        if i % 2 == 1:
            total += i
    return total
"""
_targets = types.ModuleType("_forged_code_targets")
exec(compile(TARGETS_SOURCE, "<forged targets>", "exec"), _targets.__dict__)
target_simple = _targets.target_simple
target_try = _targets.target_try
target_nested = _targets.target_nested
target_two_free = _targets.target_two_free
target_module_level = _targets.target_module_level
target_loop = _targets.target_loop


def _nested(code: Code) -> Code:
    for const in code["consts"]:
        if isinstance(const, Code):
            return const
    raise AssertionError("no nested code object")


Forge = Callable[[Code], None]
# name -> (function to forge, forge(code) editing it in place; minimum Python version)
SHAPES: Dict[str, Tuple[Callable[..., Any], Forge, Tuple[int, int]]] = {}


def shape(name: str, target: Callable[..., Any], since: Tuple[int, int] = (3, 10)
          ) -> Callable[[Forge], Forge]:
    def register(forge: Forge) -> Forge:
        SHAPES[name] = (target, forge, since)
        return forge
    return register


def _truncate_after(code: Code, opname: str, keep_caches: int) -> None:
    """End the bytecode with the first ``opname`` and only ``keep_caches`` of its caches."""
    offset = find(code, opname)
    code["code"] = code["code"][:offset + 2 + 2 * keep_caches]


for _name in ("LOAD_GLOBAL", "BINARY_OP", "CALL", "LOAD_ATTR"):
    def _missing(code: Code, _name: str = _name) -> None:
        _truncate_after(code, _name, 0)

    def _partial(code: Code, _name: str = _name) -> None:
        _truncate_after(code, _name, _codecheck.CACHE_SIZES[op(_name)] - 1)

    shape(f"last instruction {_name} without its caches", target_simple, (3, 11))(_missing)
    if _name in ("LOAD_GLOBAL", "LOAD_ATTR", "CALL"):
        shape(f"last instruction {_name} with a cache missing", target_simple, (3, 11))(_partial)


@shape("nested code whose last instruction lacks its caches", target_nested, (3, 11))
def _nested_missing(code: Code) -> None:
    _truncate_after(_nested(code), "LOAD_GLOBAL", 0)


@shape("code in a tuple constant whose last instruction lacks its caches", target_nested,
       (3, 11))
def _hidden_missing(code: Code) -> None:
    inner = _nested(code)
    _truncate_after(inner, "LOAD_GLOBAL", 0)
    code["consts"] = code["consts"] + ((1, (inner,)),)


@shape("nested bytecode by back-reference, without trailing caches", target_nested, (3, 11))
def _by_reference(code: Code) -> None:
    # Marshal lets bytecode be a reference to bytes read earlier: the screen of the marshal
    # bytes (3.12/3.13) must find that code object too.
    inner = Code(dict(_nested(code).fields))
    offset = find(inner, "LOAD_GLOBAL")
    bad = inner["code"][:offset + 2]
    inner["code"] = Ref(0)
    code["consts"] = code["consts"] + (Flagged(bad), inner)


@shape("odd length bytecode", target_simple)
def _odd(code: Code) -> None:
    code["code"] = code["code"] + b"\x00"


@shape("empty bytecode", target_simple)
def _empty(code: Code) -> None:
    code["code"] = b""


@shape("undefined opcode", target_simple)
def _undefined(code: Code) -> None:
    undefined = next(o for o in range(1, 256) if o not in _codecheck._ALL_NAME)
    code["code"] = bytes([undefined, 0]) + code["code"][2:]


@shape("CACHE as an instruction", target_simple, (3, 11))
def _cache_op(code: Code) -> None:
    code["code"] = b"\x00\x00" + code["code"]


@shape("non-zero inline cache entries", target_simple, (3, 11))
def _dirty_cache(code: Code) -> None:
    offset = find(code, "LOAD_ATTR")
    raw = bytearray(code["code"])
    raw[offset + 2 + 2 * _codecheck.CACHE_SIZES[raw[offset]] - 1] = 0x41
    code["code"] = bytes(raw)


@shape("specialized opcode", target_simple, (3, 11))
def _specialized(code: Code) -> None:
    offset = find(code, "LOAD_GLOBAL")
    raw = bytearray(code["code"])
    raw[offset] = op("LOAD_GLOBAL_MODULE")
    code["code"] = bytes(raw)


@shape("specialized opcode at the end without caches", target_simple, (3, 11))
def _specialized_last(code: Code) -> None:
    _truncate_after(code, "LOAD_GLOBAL", 0)
    code["code"] = code["code"][:-2] + bytes([op("LOAD_GLOBAL_BUILTIN"), 1])


@shape("instrumented opcode", target_simple, (3, 12))
def _instrumented(code: Code) -> None:
    code["code"] = bytes([op("INSTRUMENTED_LINE"), 0]) + code["code"]


def _instrumented_last(pad: int) -> Forge:
    def forge(code: Code) -> None:
        # 3.12/3.13 build the object by walking the bytecode with each instrumented opcode
        # read as its base form: INSTRUMENTED_CALL last, without CALL's caches, has them write
        # past the end (the padding moves the end across the allocation's rounding).
        offset = find(code, "CALL")
        nop = bytes([op("NOP"), 0])
        code["code"] = nop * pad + code["code"][:offset] + bytes([op("INSTRUMENTED_CALL"), 1])
        code["linetable"] = _relocated(code, 0)
    return forge


for _pad in range(4):
    shape(f"instrumented CALL last without its caches (+{_pad})", target_simple,
          (3, 12))(_instrumented_last(_pad))


@shape("instrumented instruction opcode", target_simple, (3, 12))
def _instrumented_instruction(code: Code) -> None:
    code["code"] = bytes([op("INSTRUMENTED_INSTRUCTION"), 0]) + code["code"]


@shape("executor opcode", target_simple, (3, 13))
def _executor(code: Code) -> None:
    code["code"] = bytes([op("ENTER_EXECUTOR"), 0]) + code["code"]


@shape("EXTENDED_ARG as the last instruction", target_simple)
def _ext_last(code: Code) -> None:
    code["code"] = code["code"] + bytes([op("EXTENDED_ARG"), 1])


@shape("LOAD_CONST past the constants", target_simple)
def _const_index(code: Code) -> None:
    with_arg(code, find(code, "LOAD_CONST", "RETURN_CONST"), len(code["consts"]))


@shape("LOAD_CONST with no constants", target_module_level)
def _no_consts(code: Code) -> None:
    code["consts"] = ()


@shape("LOAD_CONST past the constants by EXTENDED_ARG", target_simple)
def _const_index_ext(code: Code) -> None:
    offset = find(code, "LOAD_CONST", "RETURN_CONST")
    raw = code["code"]
    code["code"] = raw[:offset] + bytes([op("EXTENDED_ARG"), 1]) + raw[offset:]
    code["linetable"] = _relocated(code, 1)


@shape("LOAD_FAST past the variables", target_simple)
def _local_index(code: Code) -> None:
    with_arg(code, find(code, "LOAD_FAST", "LOAD_FAST_BORROW"), 200)


@shape("LOAD_GLOBAL past the names", target_simple)
def _global_index(code: Code) -> None:
    with_arg(code, find(code, "LOAD_GLOBAL"), 2 * len(code["names"]) + 1)


@shape("LOAD_ATTR past the names", target_simple)
def _attr_index(code: Code) -> None:
    code["names"] = code["names"][:1]  # the global stays, the attribute's name goes


@shape("LOAD_NAME past the names", target_module_level)
def _load_name(code: Code) -> None:
    offset = find(code, "LOAD_CONST", "RETURN_CONST")
    raw = bytearray(code["code"])
    returns = raw[offset] != op("LOAD_CONST")  # 3.12/3.13 RETURN_CONST: return it apart
    raw[offset:offset + 2] = bytes([op("LOAD_NAME"), 3])  # the code has no names at all
    if returns:
        raw += bytes([op("RETURN_VALUE"), 0])
    code["code"] = bytes(raw)
    code["linetable"] = _relocated(code, 0)


@shape("LOAD_DEREF past the variables", target_nested)
def _deref_index(code: Code) -> None:
    inner = _nested(code)
    with_arg(inner, find(inner, "LOAD_DEREF"), 77)


@shape("COPY_FREE_VARS not matching the free variables", target_nested, (3, 11))
def _copy_free(code: Code) -> None:
    inner = _nested(code)
    with_arg(inner, find(inner, "COPY_FREE_VARS"), 9)


def _kind_of_free(kind: int) -> Forge:
    def forge(code: Code) -> None:
        inner = _nested(code)
        kinds = bytearray(inner["localspluskinds"])
        kinds[-1] = kind  # the free variable
        inner["localspluskinds"] = bytes(kinds)
    return forge


# The co_freevars getter lists every variable with the free bit but counts only those without
# the local or cell bit: a variable with both makes it write past the tuple it fills (with two
# free variables, past a heap block the debug allocator checks).
shape("free variable also marked local", target_two_free, (3, 11))(_kind_of_free(0xA0))
shape("free variable also marked a cell", target_two_free, (3, 11))(_kind_of_free(0xC0))
shape("variable of no kind", target_two_free, (3, 11))(_kind_of_free(0x00))


@shape("BINARY_OP with an operator past the table", target_simple, (3, 11))
def _binary_op(code: Code) -> None:
    with_arg(code, find(code, "BINARY_OP"), 250)


@shape("COMPARE_OP with an unknown comparison", target_loop)
def _compare_op(code: Code) -> None:
    with_arg(code, find(code, "COMPARE_OP"), 255)


@shape("jump past the end", target_loop)
def _jump_out(code: Code) -> None:
    with_arg(code, find(code, "POP_JUMP_IF_FALSE", "POP_JUMP_IF_TRUE",
                        "POP_JUMP_FORWARD_IF_FALSE", "POP_JUMP_FORWARD_IF_TRUE",
                        "JUMP_FORWARD"), 250)


@shape("jump into inline cache entries", target_loop, (3, 11))
def _jump_into_cache(code: Code) -> None:
    offset = find(code, "JUMP_BACKWARD", "JUMP_ABSOLUTE", "POP_JUMP_BACKWARD_IF_FALSE")
    target = find(code, "CALL", "PRECALL", "BINARY_OP")
    # Backward: target = offset + 2 + 2 * caches - 2 * arg; aim one unit past the target
    # instruction, into its first cache entry.
    caches = _codecheck.CACHE_SIZES[code["code"][offset]]
    with_arg(code, offset, (offset + 2 + 2 * caches - (target + 2)) // 2)


@shape("truncated line table", target_simple)
def _lt_truncated(code: Code) -> None:
    table = code["linetable"]
    if V >= (3, 11):  # end inside a long entry: its varints run off the end
        code["linetable"] = table + b"\xf0\x41"
    else:
        code["linetable"] = table[:-1]


@shape("garbage line table", target_simple)
def _lt_garbage(code: Code) -> None:
    code["linetable"] = b"\x7f\x7f\x7f\x7f" * 4


@shape("line table shorter than the bytecode", target_simple)
def _lt_short(code: Code) -> None:
    code["linetable"] = _relocated(code, -1)


@shape("line table longer than the bytecode", target_simple)
def _lt_long(code: Code) -> None:
    code["linetable"] = _relocated(code, 40)


@shape("truncated exception table", target_try, (3, 11))
def _et_truncated(code: Code) -> None:
    code["exceptiontable"] = code["exceptiontable"][:-1] + b"\x41"


@shape("garbage exception table", target_try, (3, 11))
def _et_garbage(code: Code) -> None:
    code["exceptiontable"] = b"\x41\x41\x41\x41\x41"


@shape("exception handler past the end", target_try, (3, 11))
def _et_handler_out(code: Code) -> None:
    # One entry covering the first instruction, handler at unit 960 (0x0f << 6), depth 0.
    code["exceptiontable"] = b"\x80\x01\x4f\x00\x00"


@shape("exception handler deeper than the stack", target_try, (3, 11))
def _et_deep(code: Code) -> None:
    # The first entry with its depth raised past co_stacksize (varints of 6-bit chunks, bit 6
    # on all but the last, bit 7 on an entry's first byte).
    table = code["exceptiontable"]
    items = []
    i = 0
    for _ in range(4):
        j = i
        while table[j] & 0x40:
            j += 1
        items.append(table[i:j + 1])
        i = j + 1
    depth = (code["stacksize"] + 5) << 1
    items[3] = bytes([0x40 | depth >> 6, depth & 63])
    code["exceptiontable"] = b"".join(items) + table[i:]


@shape("docstring flag without constants", target_module_level, (3, 14))
def _docstring(code: Code) -> None:
    code["flags"] = code["flags"] | _codecheck.CO_HAS_DOCSTRING
    code["consts"] = ()
    code["code"] = bytes([op("LOAD_SMALL_INT"), 0, op("RETURN_VALUE"), 0])
    code["linetable"] = _relocated(code, 0, units=len(code["code"]) // 2)


def _relocated(code: Code, extra_units: int, units: Optional[int] = None) -> bytes:
    """A line table covering the bytecode's length in code units plus ``extra_units``."""
    n = (len(code["code"]) // 2 if units is None else units) + extra_units
    if V < (3, 11):
        out = b""
        left = 2 * n
        while left > 0:
            step = min(left, 254)
            out += bytes([step, 0])
            left -= step
        return out
    out = b""
    while n > 0:  # "no columns" entries on the first line: 1 1101 lll, line delta 0
        step = min(n, 8)
        out += bytes([0xE8 | (step - 1), 0])
        n -= step
    return out


# Header fields CPython's own validation refuses (with SystemError or ValueError from marshal).
VALIDATION_SHAPES: Dict[str, Forge] = {
    "negative stack size": lambda c: c.fields.update(stacksize=-1),
    "more positional-only arguments than arguments": lambda c: c.fields.update(
        posonlyargcount=5),
    "negative keyword-only argument count": lambda c: c.fields.update(kwonlyargcount=-1),
    "bytecode that is a str": lambda c: c.fields.update(code="\x97\x00"),
    "constants that are a list": lambda c: c.fields.update(consts=[None]),
}
if V >= (3, 11):
    VALIDATION_SHAPES["variable kinds of the wrong length"] = lambda c: c.fields.update(
        localspluskinds=c["localspluskinds"] + b" ")


# --- Making and loading the pickles ------------------------------------------------------------

def _pickler(impl: Any, forge: Forge) -> Any:
    """impl.Pickler whose function reductions carry forged code bytes."""

    def forged(sealed: bytes) -> bytes:
        code = parse(bytes(unseal(sealed)))
        forge(code)
        return seal(dump(code))

    class ForgingPickler(impl.Pickler):  # type: ignore[misc, name-defined]
        forged = 0

        def reducer_override(self, obj: Any) -> Any:
            rv = super().reducer_override(obj)
            if type(obj) is types.FunctionType and isinstance(rv, tuple):
                self.forged += 1
                args = tuple(forged(a) if type(a) is bytes else a for a in rv[1])
                assert args != rv[1], "no code bytes in the reduction"
                return (rv[0], args) + rv[2:]
            return rv

    return ForgingPickler


def forged_pickle(impl: Any, target: Callable[..., Any], forge: Forge) -> bytes:
    f = io.BytesIO()
    pickler = _pickler(impl, forge)(f)
    pickler.dump(target)
    assert pickler.forged, "the function was not pickled by value"
    return f.getvalue()


# Loads each length-prefixed pickle; one line per pickle. A loaded function has its code read
# every way the rest of the interpreter reads code, so damage the check let through shows here.
LOADER = r"""
import dis, gc, marshal, pickle, struct, sys
data = sys.stdin.buffer.read()
pos = 0
while pos < len(data):
    (n,) = struct.unpack_from(">I", data, pos)
    blob = data[pos + 4:pos + 4 + n]
    pos += 4 + n
    try:
        obj = pickle.loads(blob)
    except pickle.UnpicklingError as exc:
        print("UnpicklingError:", str(exc).replace("\n", " "), flush=True)
        continue
    except BaseException as exc:
        print("other:", type(exc).__name__, str(exc).replace("\n", " ")[:300], flush=True)
        continue
    code = obj.__code__
    try:
        marshal.dumps(code)
        code.replace(co_name=code.co_name)
        list(code.co_lines())
        if hasattr(code, "co_positions"):  # 3.11+
            list(code.co_positions())
        list(dis.get_instructions(code))
        outcome = "loaded"
    except Exception as exc:
        outcome = "loaded, then reading it raised " + type(exc).__name__
    # Freed now: the debug allocator checks the bytes around a block when it is freed.
    del obj, code
    gc.collect()
    print(outcome, flush=True)
"""


def _child_env(impl: Any) -> Dict[str, str]:
    env = impl.env()  # the package under test, this twin active
    env["PYTHONMALLOC"] = "debug"  # aborts on a write past a heap block
    env["PYTHONFAULTHANDLER"] = "1"
    return env


def _run(env: Dict[str, str], blobs: List[bytes], script: str = LOADER
         ) -> "subprocess.CompletedProcess[bytes]":
    stdin = b"".join(struct.pack(">I", len(b)) + b for b in blobs)
    return subprocess.run([sys.executable, "-c", script], input=stdin, capture_output=True,
                          env=env, timeout=300)


def load_each(impl: Any, blobs: Dict[str, bytes]) -> Dict[str, str]:
    """{label: the child's line for it}; a child that dies is reported per label, each label
    then loaded in a child of its own to find the one that killed it."""
    env = _child_env(impl)
    proc = _run(env, list(blobs.values()))
    lines = proc.stdout.decode(errors="replace").splitlines()
    if proc.returncode == 0 and len(lines) == len(blobs):
        return dict(zip(blobs, lines))
    results = {}
    for label, blob in blobs.items():
        alone = _run(env, [blob])
        out = alone.stdout.decode(errors="replace").strip()
        if alone.returncode != 0:
            err = alone.stderr.decode(errors="replace")
            out = f"child died ({alone.returncode}): {out} {err[-600:]}"
        results[label] = out
    return results


def _refused(line: str) -> bool:
    return line.startswith("UnpicklingError:")


# --- Tests -------------------------------------------------------------------------------------

def test_forged_code_is_refused_never_a_crash(impl: Any) -> None:
    blobs = {}
    for label, (target, forge, since) in SHAPES.items():
        if V < since:
            continue
        blobs[label] = forged_pickle(impl, target, forge)
    assert len(blobs) >= (40 if V >= (3, 11) else 18)  # (3.12+: more)
    results = load_each(impl, blobs)
    wrong = {label: line for label, line in results.items() if not _refused(line)}
    assert not wrong, f"[{impl.name}] forged code not refused with UnpicklingError: {wrong}"


def _missing_global_caches(code: Code) -> None:
    _truncate_after(code, "LOAD_GLOBAL", 0)


def test_refusal_names_the_function_and_the_problem(impl: Any) -> None:
    cases = {
        "missing caches": (target_simple, _missing_global_caches if V >= (3, 11) else _odd,
                           "inline cache" if V >= (3, 11) else "odd length"),
        "constant index": (target_simple, _const_index, "constants"),
        "nested": (target_nested, _deref_index, "LOAD_DEREF 77"),
        "line table": (target_simple, _lt_garbage, "line table"),
    }
    blobs = {label: forged_pickle(impl, target, forge)
             for label, (target, forge, _) in cases.items()}
    results = load_each(impl, blobs)
    for label, (target, _, words) in cases.items():
        line = results[label]
        name = "inner" if target is target_nested else target.__name__
        assert _refused(line) and name in line and words in line, (label, line)


def test_code_failing_cpython_validation_is_unpicklingerror(impl: Any) -> None:
    blobs = {label: forged_pickle(impl, target_simple, forge)
             for label, forge in VALIDATION_SHAPES.items()}
    results = load_each(impl, blobs)
    wrong = {label: line for label, line in results.items() if not _refused(line)}
    assert not wrong, f"[{impl.name}] not UnpicklingError: {wrong}"


# Every code object of these modules, compiled from source here, marshalled and sealed as a
# pickle carries it and rebuilt in a child by the loader's code reconstructor.
STDLIB_MODULES = ("json.decoder", "json.encoder", "email.message", "email._header_value_parser",
                  "email.utils", "asyncio.base_events", "asyncio.tasks", "asyncio.streams",
                  "dataclasses", "typing", "inspect", "argparse", "enum", "tarfile", "decimal",
                  "_pydecimal", "difflib", "pathlib", "logging", "threading", "collections")

REAL_LOADER = r"""
import struct, sys
from fastfnpickle import _rebuild
from fastfnpickle._format import CODE_TAG
data = sys.stdin.buffer.read()
pos = 0
bad = []
count = 0
while pos < len(data):
    (n,) = struct.unpack_from(">I", data, pos)
    blob = data[pos + 4:pos + 4 + n]
    pos += 4 + n
    try:
        code = _rebuild.code(CODE_TAG, blob, "<real>")
        code.co_code, code.co_freevars  # readable the way the rest of the interpreter reads it
    except BaseException as exc:
        bad.append(type(exc).__name__ + ": " + str(exc))
    count += 1
print(count)
for line in bad[:20]:
    print(line)
"""


def _stdlib_code() -> List[types.CodeType]:
    import importlib

    found: List[types.CodeType] = []

    def walk(code: types.CodeType) -> None:
        found.append(code)
        for const in code.co_consts:
            if type(const) is types.CodeType:
                walk(const)

    for name in STDLIB_MODULES:
        module = importlib.import_module(name)
        path = module.__file__
        assert path and path.endswith(".py"), name
        with open(path, "rb") as f:
            walk(compile(f.read(), path, "exec"))
    return found


def test_real_code_passes_the_check(impl: Any) -> None:
    codes = _stdlib_code()
    assert len(codes) > 2000
    blobs = [seal(marshal.dumps(code.replace(co_filename=""))) for code in codes]
    proc = _run(_child_env(impl), blobs, REAL_LOADER)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    lines = proc.stdout.decode().splitlines()
    assert lines[0] == str(len(codes))
    assert lines[1:] == [], f"[{impl.name}] real code refused: {lines[1:]}"


def test_real_code_passes_in_process() -> None:
    # The same corpus without a child: the check itself, every code object and its nested ones.
    for code in _stdlib_code():
        body = marshal.dumps(code)
        _codecheck.check_marshal(body)
        _codecheck.check_loadable(marshal.loads(body))


def test_jump_targets_match_dis() -> None:
    import dis

    jumps = 0
    for code in _stdlib_code()[:3000]:
        raw = code.co_code
        ops, args = raw[::2], raw[1::2]
        for ins in dis.get_instructions(code):
            if ins.opcode in _codecheck._RELATIVE | _codecheck._ABSOLUTE:
                i = ins.offset // 2
                target = _codecheck._jump_target(ins.opcode, i,
                                                 _codecheck._full_arg(ops, args, i))
                assert 2 * target == ins.argval, (code, ins)
                jumps += 1
    assert jumps > 1000


def test_argument_tables_match_dis() -> None:
    import dis

    if V >= (3, 13):
        attr = _codecheck._TABLES[_codecheck._op["SET_FUNCTION_ATTRIBUTE"]]
        assert attr == {1 << i for i in range(len(dis.FUNCTION_ATTR_FLAGS))}
    # dis decodes a comparison for exactly the arguments the check allows. (Only the argument
    # of a well-formed instruction changes: this code object is safe to build.)
    code = target_loop.__code__
    offset = find(parse(marshal.dumps(code.replace(co_filename=""), 2)), "COMPARE_OP")
    allowed = _codecheck._TABLES[_codecheck._op["COMPARE_OP"]]
    for arg in range(256):
        raw = bytearray(code.co_code)
        raw[offset + 1] = arg
        try:
            list(dis.get_instructions(code.replace(co_code=bytes(raw))))
            decoded = True
        except IndexError:
            decoded = False
        assert decoded == (arg in allowed), arg


def test_forged_payloads_differ_from_the_valid_one(impl: Any) -> None:
    valid = impl.dumps(target_simple)
    for label, (target, forge, since) in SHAPES.items():
        if V < since or target is not target_simple:
            continue
        assert forged_pickle(impl, target, forge) != valid, label


def test_reader_and_writer_round_trip() -> None:
    for target in (target_simple, target_try, target_nested, target_loop):
        body = marshal.dumps(target.__code__.replace(co_filename=""), 2)
        assert dump(parse(body)) == body, target

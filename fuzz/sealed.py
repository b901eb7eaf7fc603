"""Finding and re-sealing the code payloads inside a (possibly damaged) pickle.

fastfnpickle writes every code object as *sealed* bytes: a CRC-32 (little-endian) of the
marshal bytes, then the marshal bytes (``_format.seal``). A mutation inside such a payload is
refused by the checksum before the load-side code check ever sees it; the ``reseal`` fuzzing
mode recomputes the checksums after each mutation so forged code reaches that check.

Everything here is tolerant of garbage: the fuzzer hands in whatever libFuzzer made, and the
worst outcome of a wrong guess is one more odd mutation. Nothing here builds a code object
from mutated bytes (on 3.11 merely ``replace()``-ing forged code can write past a buffer).
"""

import pickletools
import sys
import zlib
from typing import Dict, List, NamedTuple, Optional, Tuple

SHORT_BINBYTES = 0x43  # 'C': 1-byte length
BINBYTES = 0x42        # 'B': 4-byte length
BINBYTES8 = 0x8E       # 8-byte length (protocol 4+)
FRAME = 0x95           # 8-byte frame length (protocol 4+)
PROTO = 0x80
_LENGTH_BYTES = {SHORT_BINBYTES: 1, BINBYTES: 4, BINBYTES8: 8}
# Marshal's type byte of a code object, with and without its reference flag.
_CODE_TYPES = (ord("c"), ord("c") | 0x80)


class Payload(NamedTuple):
    """A sealed code payload: the bytes opcode at ``op``, the payload at [start, end)."""

    op: int
    start: int
    end: int


def _opcode_table() -> Dict[int, Tuple[int, int]]:
    """Opcode byte -> (argument kind, size): kind 0 = fixed size, 1 = length-prefixed (size =
    width of the length), 2 = up to a newline (size = number of lines)."""
    table: Dict[int, Tuple[int, int]] = {}
    for op in pickletools.opcodes:
        arg = op.arg
        if arg is None:
            entry = (0, 0)
        elif arg.n >= 0:
            entry = (0, arg.n)
        elif arg.n == pickletools.UP_TO_NEWLINE:
            entry = (2, 2 if op.name in ("GLOBAL", "INST") else 1)
        else:
            width = {pickletools.TAKEN_FROM_ARGUMENT1: 1, pickletools.TAKEN_FROM_ARGUMENT4: 4,
                     pickletools.TAKEN_FROM_ARGUMENT4U: 4,
                     pickletools.TAKEN_FROM_ARGUMENT8U: 8}[arg.n]
            entry = (1, width)
        table[op.code.encode("latin-1")[0]] = entry
    return table


_OPCODES = _opcode_table()
_STOP = ord(".")


def find_payloads(data: bytes) -> List[Payload]:
    """Every bytes opcode whose contents look like sealed marshal code (checksum not checked:
    the point is to find damaged ones too). The opcodes are followed from the start, so bytes
    inside strings are not taken for opcodes; the walk ends at STOP, at an unknown opcode or
    where an argument runs past the end (the rest of a damaged pickle is not guessed at)."""
    found: List[Payload] = []
    n = len(data)
    i = 0
    while i < n:
        op = data[i]
        entry = _OPCODES.get(op)
        if entry is None or op == _STOP:
            break
        kind, size = entry
        if kind == 0:
            i += 1 + size
        elif kind == 2:
            for _ in range(size):
                nl = data.find(b"\n", i + 1)
                if nl < 0:
                    return found
                i = nl
            i += 1
        else:
            start = i + 1 + size
            end = start + int.from_bytes(data[i + 1:start], "little")
            if end > n:
                break
            if op in _LENGTH_BYTES and end - start >= 5 and data[start + 4] in _CODE_TYPES:
                found.append(Payload(i, start, end))
            i = end
    return found


def seal(body: bytes) -> bytes:
    return zlib.crc32(body).to_bytes(4, "little") + body


def reseal_all(data: bytes) -> bytes:
    """``data`` with the checksum of every payload recomputed over its current contents."""
    buf = bytearray(data)
    for p in find_payloads(data):
        buf[p.start:p.start + 4] = zlib.crc32(buf[p.start + 4:p.end]).to_bytes(4, "little")
    return bytes(buf)


def _frames(data: bytes) -> List[Tuple[int, int]]:
    """(position of the FRAME opcode, end of its frame), following frames back to back from
    the start; stops at the first thing that is not a frame where one could be."""
    frames = []
    pos = 2 if len(data) >= 2 and data[0] == PROTO else 0
    while pos + 9 <= len(data) and data[pos] == FRAME:
        end = pos + 9 + int.from_bytes(data[pos + 1:pos + 9], "little")
        frames.append((pos, end))
        pos = end
    return frames


def replace_payload(data: bytes, payload: Payload, new: bytes) -> bytes:
    """``data`` with ``payload``'s contents replaced by ``new`` (already sealed), the bytes
    opcode's length and the enclosing frame's length adjusted to match."""
    op = data[payload.op]
    if op == SHORT_BINBYTES and len(new) > 0xFF:
        op = BINBYTES
    head = bytes([op]) + len(new).to_bytes(_LENGTH_BYTES[op], "little")
    out = data[:payload.op] + head + new + data[payload.end:]
    delta = len(out) - len(data)
    if delta:
        for pos, end in _frames(data):
            if pos < payload.op < end:
                length = end + delta - (pos + 9)
                out = out[:pos + 1] + length.to_bytes(8, "little") + out[pos + 9:]
                break
    return out


# ------------------------------------------------------------------------------ marshal

_FLAG_REF = 0x80
_FIXED = {ord(c): 0 for c in "0NFTS."}
_FIXED.update({ord("i"): 4, ord("I"): 8, ord("g"): 8, ord("y"): 16, ord("r"): 4})
_SIZED4 = frozenset(ord(c) for c in "stuaA")   # int32 length, then the bytes
_SIZED1 = frozenset(ord(c) for c in "zZ")      # one-byte length, then the bytes
_SEQ4 = frozenset(ord(c) for c in "([<>")      # int32 count, then the items
# Before co_code: 5 int32 fields from 3.11 on (argcount, posonly, kwonly, stacksize, flags),
# 6 on 3.10 (nlocals too). After it, the objects up to co_firstlineno (an int32), then those
# after it.
_CODE_INTS = 6 if sys.version_info < (3, 11) else 5
_BEFORE_LINENO = 6 if sys.version_info < (3, 11) else 7   # consts ... name (qualname)
_AFTER_LINENO = 1 if sys.version_info < (3, 11) else 2    # linetable (, exceptiontable)


class BadMarshal(Exception):
    """The stream is not marshal data this walker understands."""


class _Walker:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.spans: List[Tuple[int, int]] = []  # (position of the length field, end)

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise BadMarshal("truncated")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def int32(self) -> int:
        return int.from_bytes(self.take(4), "little", signed=True)

    def obj(self, depth: int = 0) -> int:
        """Skip one object; returns its type byte (without the reference flag)."""
        if depth > 100:
            raise BadMarshal("nested too deeply")
        t = self.take(1)[0] & ~_FLAG_REF
        if t in _FIXED:
            self.take(_FIXED[t])
        elif t == ord("l"):
            self.take(2 * abs(self.int32()))
        elif t in _SIZED4:
            self.take(self.int32())
        elif t in _SIZED1 or t == ord("f"):
            self.take(self.take(1)[0])
        elif t == ord("x"):
            self.take(self.take(1)[0])
            self.take(self.take(1)[0])
        elif t == ord(")"):
            for _ in range(self.take(1)[0]):
                self.obj(depth + 1)
        elif t in _SEQ4:
            n = self.int32()
            if n < 0:
                raise BadMarshal("negative count")
            for _ in range(n):
                self.obj(depth + 1)
        elif t == ord("{"):
            while self.obj(depth + 1) != ord("0"):
                self.obj(depth + 1)
        elif t == ord("c"):
            self.take(4 * _CODE_INTS)
            if self.take(1)[0] & ~_FLAG_REF == ord("s"):
                at = self.pos
                self.take(self.int32())
                self.spans.append((at, self.pos))
            else:  # bytecode shared by reference: nothing to mutate in place
                self.pos -= 1
                self.obj(depth + 1)
            for _ in range(_BEFORE_LINENO):
                self.obj(depth + 1)
            self.int32()
            for _ in range(_AFTER_LINENO):
                self.obj(depth + 1)
        else:
            raise BadMarshal(f"unknown type byte {t:#x}")
        return t


def bytecode_spans(body: bytes) -> Optional[List[Tuple[int, int]]]:
    """Where the bytecode of each code object sits in marshal ``body``: (position of its int32
    length, end of the bytecode); None when ``body`` cannot be walked."""
    walker = _Walker(body)
    try:
        walker.obj()
    except (BadMarshal, RecursionError):
        return None
    return walker.spans


def with_bytecode(body: bytes, span: Tuple[int, int], code: bytes) -> bytes:
    """Marshal ``body`` with the bytecode at ``span`` replaced by ``code`` (length updated)."""
    at, end = span
    return body[:at] + len(code).to_bytes(4, "little") + code + body[end:]

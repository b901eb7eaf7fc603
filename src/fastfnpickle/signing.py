"""Signed pickles: an HMAC-SHA256 envelope for pickles that cross a trust boundary.

Unpickling runs code chosen by whoever wrote the bytes. A signed envelope lets a reader that
shares a secret key with the writer refuse, before unpickling anything, bytes the key holder
did not write. It does not make pickle safe for data from someone who has the key.

Envelope layout (version 1), all integers big-endian::

    magic     5 bytes   b"\\xffFFPS"  (0xff is not a pickle opcode: plain pickle.loads refuses it)
    version   1 byte    1
    nbuffers  4 bytes   number of out-of-band buffers the tag also covers
    length    8 bytes   length of the pickle payload
    tag      32 bytes   HMAC-SHA256(key, magic..length || payload || each buffer as len + bytes)
    payload  `length` bytes: the pickle stream

The tag covers the header, so neither the version nor the buffer count can be swapped without
the key; buffers are length-prefixed so their boundaries cannot be shifted either.

What is checked is what is unpickled: :func:`loads` and :func:`verify` take one immutable
snapshot of the envelope (``bytes`` as given, any other buffer copied once), check the tag over
it and unpickle (or return) that same snapshot, so a buffer another thread or process writes
cannot be changed between the check and its use. :func:`load` refuses a header claiming more
than ``max_size`` payload bytes (default :data:`MAX_LOAD_SIZE`) and reads the payload in
chunks, so a lying length costs memory only for the bytes that actually arrive. Every refusal
of the data is a :class:`pickle.UnpicklingError`, raised before anything is unpickled.
"""

import hashlib
import hmac
import operator
import pickle
import struct
from pickle import PickleBuffer, UnpicklingError
from typing import Any, Callable, Iterable, List, Optional, Sequence, Union

from ._impl import core as _core

__all__ = ["MAGIC", "VERSION", "HEADER_SIZE", "MAX_LOAD_SIZE", "dump", "dumps", "load", "loads",
           "sign", "verify"]

MAGIC: bytes = b"\xffFFPS"
VERSION: int = 1
_HEADER = struct.Struct(">5sBIQ")
_TAG_SIZE = hashlib.sha256().digest_size
_LEN = struct.Struct(">Q")
HEADER_SIZE: int = _HEADER.size + _TAG_SIZE  # bytes before the payload

#: The largest payload, in bytes, :func:`load` accepts unless given ``max_size=``. The header's
#: length is written by whoever made the stream: without a bound, one forged header makes the
#: reader buffer that much before the tag can be checked. Raise it (or pass ``max_size=``) for
#: larger signed pickles from a source you trust; :func:`loads` needs no bound, its input is
#: already in memory.
MAX_LOAD_SIZE: int = 1 << 30
# load() never asks a file for more than this at once: BufferedReader.read(n) and FileIO.read(n)
# allocate n bytes before reading, so asking for the claimed length would allocate it up front.
_READ_CHUNK = 1 << 20


def _check_key(key: Any) -> bytes:
    if isinstance(key, str):
        raise TypeError("signing key must be bytes, not str; encode it explicitly "
                        "(a random key: secrets.token_bytes(32))")
    try:
        key = bytes(memoryview(key))
    except TypeError:
        raise TypeError(f"signing key must be bytes-like, not {type(key).__name__}") from None
    if not key:
        raise ValueError("signing key must not be empty")
    return key


def _snapshot(data: Any) -> bytes:
    """``data`` as bytes that nobody can change: ``bytes`` itself, anything else copied once."""
    # Only exact bytes is known to be immutable: a bytes subclass may export another object's
    # buffer (__buffer__, 3.12+), and bytes(obj) would trust obj.__bytes__ over its buffer.
    if type(data) is bytes:
        return data
    if isinstance(data, str):
        raise TypeError("a signed pickle is bytes, not str: read it from a binary file "
                        "(mode 'rb') and do not decode it")
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError("a signed pickle must be a bytes-like object, "
                        f"not {type(data).__name__}") from None
    # Released at once, so the caller's bytearray can be resized, or its mmap closed, even
    # while an exception raised from here is still referenced.
    with view:
        if not view.c_contiguous:
            # What pickle.loads raises too; a strided view of an envelope is a caller's bug.
            raise BufferError("a signed pickle must be a C-contiguous buffer")
        return view.tobytes()


def _tag(key: bytes, header: bytes, payload: Any, buffers: Sequence[Any]) -> bytes:
    mac = hmac.new(key, header, hashlib.sha256)
    mac.update(payload)
    for buf in buffers:
        view = memoryview(buf)
        # raw() refuses non-contiguous buffers, which pickle never passes out of band.
        raw = view.cast("B") if view.contiguous else memoryview(view.tobytes())
        mac.update(_LEN.pack(raw.nbytes))
        mac.update(raw)
    return mac.digest()


def sign(data: bytes, key: bytes, buffers: Iterable[Any] = ()) -> bytes:
    """Wrap the pickle ``data`` in a signed envelope.

    ``buffers`` are the out-of-band buffers of a protocol 5 pickle, in order; the tag covers
    them too, so :func:`verify` must be given the same buffers.
    """
    key = _check_key(key)
    bufs = list(buffers)
    # One snapshot, so the tag and the bytes written next to it are the same bytes even if
    # another thread writes ``data`` meanwhile.
    payload = _snapshot(data)
    header = _HEADER.pack(MAGIC, VERSION, len(bufs), len(payload))
    return b"".join((header, _tag(key, header, payload, bufs), payload))


def _refuse_header(data: memoryview) -> UnpicklingError:
    """The error for bytes that do not start with a version-1 envelope header."""
    head = bytes(data[:len(MAGIC) + 1])
    if head and (head == MAGIC + bytes([VERSION]) or MAGIC.startswith(head)):
        return UnpicklingError("signed pickle is truncated: the envelope header is incomplete")
    if head[:len(MAGIC)] == MAGIC:
        return UnpicklingError(
            f"signed pickle uses envelope version {head[len(MAGIC)]}, but this fastfnpickle "
            f"reads only version {VERSION}; upgrade fastfnpickle on the loading side"
        )
    looks_like_pickle = head[:1] == b"\x80"
    return UnpicklingError(
        "refusing to load unsigned data: it does not start with a fastfnpickle signed "
        "envelope" + (" (it looks like a plain pickle)" if looks_like_pickle else "")
        + ". Loading an unsigned pickle from an untrusted source runs arbitrary code; "
        "sign it with fastfnpickle.signing.sign() or dumps(obj, key=...) on the writing side"
    )


def _check_buffer_count(nbuffers: int, buffers: Sequence[Any]) -> None:
    if nbuffers != len(buffers):
        raise UnpicklingError(f"signed pickle was written with {nbuffers} out-of-band "
                              f"buffer(s); {len(buffers)} given")


def _check_tag(key: bytes, header: bytes, tag: Any, payload: Any,
               buffers: Sequence[Any]) -> None:
    # compare_digest takes time independent of where the tags differ: no timing oracle.
    if not hmac.compare_digest(_tag(key, header, payload, buffers), tag):
        raise UnpicklingError("signature does not verify: the data was modified or signed "
                              "with a different key; nothing was unpickled")


def _verified(data: Any, key: bytes, buffers: Sequence[Any]) -> memoryview:
    """The payload of a verified envelope: a view into an immutable snapshot of ``data``.

    The caller must unpickle this view, never ``data`` itself: ``data`` may be a buffer that
    someone else writes after the tag was checked.
    """
    key = _check_key(key)
    view = memoryview(_snapshot(data))
    if view.nbytes < _HEADER.size or view[:len(MAGIC)] != MAGIC or view[len(MAGIC)] != VERSION:
        raise _refuse_header(view)
    header = bytes(view[:_HEADER.size])
    _, _, nbuffers, length = _HEADER.unpack(header)
    if view.nbytes != HEADER_SIZE + length:
        what = "truncated" if view.nbytes < HEADER_SIZE + length else "followed by extra bytes"
        raise UnpicklingError(f"signed pickle is {what}: the envelope says "
                              f"{length} payload bytes, found {view.nbytes - HEADER_SIZE}")
    _check_buffer_count(nbuffers, buffers)
    payload = view[HEADER_SIZE:]
    _check_tag(key, header, view[_HEADER.size:HEADER_SIZE], payload, buffers)
    return payload


def verify(data: bytes, key: bytes, buffers: Iterable[Any] = ()) -> bytes:
    """The pickle inside a signed envelope, after checking its tag.

    Raises :class:`pickle.UnpicklingError` for unsigned data, a wrong key, a truncated or
    modified envelope, or out-of-band ``buffers`` that differ from the signed ones. Nothing
    is unpickled here. ``data`` that is not ``bytes`` is copied once before it is checked, and
    the bytes returned come from that copy.
    """
    return bytes(_verified(data, key, list(buffers)))


class _BufferRecorder:
    """Wraps a ``buffer_callback`` and remembers which buffers went out of band."""

    def __init__(self, callback: Optional[Callable[[PickleBuffer], Any]]) -> None:
        self.callback = callback
        self.buffers: List[PickleBuffer] = []

    def __call__(self, buf: PickleBuffer) -> Any:
        keep_in_band = self.callback(buf) if self.callback is not None else False
        if not keep_in_band:
            self.buffers.append(buf)
        return keep_in_band


def _pickle(obj: Any, protocol: Optional[int],
            buffer_callback: Optional[Callable[[PickleBuffer], Any]]) -> "tuple[bytes, list]":
    if buffer_callback is None:
        return _core.dumps(obj, protocol), []
    recorder = _BufferRecorder(buffer_callback)
    return _core.dumps(obj, protocol, recorder), recorder.buffers


def dumps(obj: Any, key: bytes, protocol: Optional[int] = None,
          buffer_callback: Optional[Callable[[PickleBuffer], Any]] = None) -> bytes:
    """Pickle ``obj`` with fastfnpickle and sign it with ``key``.

    With ``buffer_callback`` (protocol 5), the buffers it takes out of band are covered by
    the tag; pass the same buffers, in order, to :func:`loads`.
    """
    key = _check_key(key)
    data, buffers = _pickle(obj, protocol, buffer_callback)
    return sign(data, key, buffers)


def dump(obj: Any, file: Any, key: bytes, protocol: Optional[int] = None,
         buffer_callback: Optional[Callable[[PickleBuffer], Any]] = None) -> None:
    """Write the signed pickle of ``obj`` to the binary ``file``."""
    file.write(dumps(obj, key, protocol, buffer_callback))


def loads(data: Any, key: bytes, *, fix_imports: bool = True, encoding: str = "ASCII",
          errors: str = "strict", buffers: Optional[Iterable[Any]] = None) -> Any:
    """Verify the signed pickle ``data`` with ``key``, then unpickle it.

    Raises :class:`pickle.UnpicklingError` before unpickling anything if the tag does not
    verify. ``data`` is any C-contiguous bytes-like object: ``bytes`` is used as it is, anything
    else (``bytearray``, ``memoryview``, ``mmap``, shared memory) is copied once, and the tag is
    checked on the copy that is then unpickled, so writes to ``data`` by another thread or
    process cannot change what loads. Out-of-band ``buffers`` are not copied (that would undo
    protocol 5's zero copy): the loaded objects share their memory. Other keywords are those of
    :func:`pickle.loads`.
    """
    bufs = list(buffers) if buffers is not None else []
    payload = _verified(data, key, bufs)
    return pickle.loads(payload, fix_imports=fix_imports, encoding=encoding, errors=errors,
                        buffers=bufs)


def _read(file: Any, n: int) -> Any:
    chunk = file.read(n)
    if isinstance(chunk, str):
        raise TypeError("signing.load needs a file opened in binary mode ('rb'): "
                        "its read() returned str")
    if chunk and len(chunk) > n:
        # Counting on exact reads is what leaves the file right after the envelope.
        raise ValueError(f"read() returned too much data: {n} bytes requested, "
                         f"{len(chunk)} returned")
    return chunk


def _read_exactly(file: Any, n: int) -> bytes:
    """Up to ``n`` bytes from ``file``, fewer only at end of stream; for small ``n`` only."""
    chunks = []
    while n > 0:
        chunk = _read(file, n)
        if not chunk:
            break
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_payload(file: Any, length: int) -> Union[bytes, bytearray]:
    """Exactly ``length`` bytes from ``file``, in a buffer that only this module references.

    Memory grows with the bytes that arrive, never with ``length`` alone: the length comes
    from a header nobody has verified yet.
    """
    first = _read(file, min(length, _READ_CHUNK))
    # The common case, one read: no copy. read() of a custom file may return a buffer its
    # owner keeps writing, so anything but exact bytes is copied.
    if type(first) is bytes and len(first) == length:
        return first
    payload = bytearray(first or b"")
    while len(payload) < length:
        chunk = _read(file, min(length - len(payload), _READ_CHUNK))
        if not chunk:
            raise UnpicklingError(f"signed pickle is truncated: the envelope says {length} "
                                  f"payload bytes, the stream ended after {len(payload)}")
        payload += chunk
    return payload


def _max_size(max_size: Optional[int]) -> int:
    limit = MAX_LOAD_SIZE if max_size is None else operator.index(max_size)
    if limit < 0:
        raise ValueError(f"max_size must not be negative, got {limit}")
    return limit


def load(file: Any, key: bytes, *, max_size: Optional[int] = None, fix_imports: bool = True,
         encoding: str = "ASCII", errors: str = "strict",
         buffers: Optional[Iterable[Any]] = None) -> Any:
    """Read one signed pickle from the binary ``file``, verify it, then unpickle it.

    Reads exactly one envelope and leaves ``file`` right after it, so several signed pickles
    can follow each other in a file. A header claiming a payload longer than ``max_size``
    bytes (default :data:`MAX_LOAD_SIZE`, 1 GiB, read at each call) is refused before any of
    the payload is read; the payload is read in chunks of at most 1 MiB, so a stream shorter
    than its header claims costs memory only for what it holds. Refusals (unsigned data, a
    length over ``max_size``, a truncated stream, a tag that does not verify) raise
    :class:`pickle.UnpicklingError` before anything is unpickled. Other keywords are those of
    :func:`pickle.load`.
    """
    key = _check_key(key)
    limit = _max_size(max_size)
    bufs = list(buffers) if buffers is not None else []
    head = _read_exactly(file, HEADER_SIZE)
    if len(head) < HEADER_SIZE or head[:len(MAGIC)] != MAGIC or head[len(MAGIC)] != VERSION:
        raise _refuse_header(memoryview(head))
    header, tag = head[:_HEADER.size], head[_HEADER.size:]
    _, _, nbuffers, length = _HEADER.unpack(header)
    if length > limit:
        raise UnpicklingError(
            f"signed pickle's header claims {length} payload bytes, more than max_size="
            f"{limit}; refused before reading them. For larger pickles from a source you "
            "trust, pass max_size= to fastfnpickle.signing.load (or raise "
            "fastfnpickle.signing.MAX_LOAD_SIZE)")
    _check_buffer_count(nbuffers, bufs)
    payload = _read_payload(file, length)
    _check_tag(key, header, tag, payload, bufs)
    return pickle.loads(payload, fix_imports=fix_imports, encoding=encoding, errors=errors,
                        buffers=bufs)

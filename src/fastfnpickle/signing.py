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
"""

import hashlib
import hmac
import pickle
import struct
from pickle import PickleBuffer, UnpicklingError
from typing import Any, Callable, Iterable, List, Optional, Sequence

from ._impl import core as _core

__all__ = ["MAGIC", "VERSION", "HEADER_SIZE", "dump", "dumps", "load", "loads", "sign", "verify"]

MAGIC: bytes = b"\xffFFPS"
VERSION: int = 1
_HEADER = struct.Struct(">5sBIQ")
_TAG_SIZE = hashlib.sha256().digest_size
_LEN = struct.Struct(">Q")
HEADER_SIZE: int = _HEADER.size + _TAG_SIZE  # bytes before the payload


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
    payload = memoryview(data).cast("B")
    header = _HEADER.pack(MAGIC, VERSION, len(bufs), payload.nbytes)
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


def _verified(data: Any, key: bytes, buffers: Sequence[Any]) -> memoryview:
    """The payload of a verified envelope, as a view into ``data`` (no copy)."""
    key = _check_key(key)
    view = memoryview(data).cast("B")
    if view.nbytes < _HEADER.size or bytes(view[:len(MAGIC)]) != MAGIC \
            or view[len(MAGIC)] != VERSION:
        raise _refuse_header(view)
    header = bytes(view[:_HEADER.size])
    _, _, nbuffers, length = _HEADER.unpack(header)
    if view.nbytes != HEADER_SIZE + length:
        what = "truncated" if view.nbytes < HEADER_SIZE + length else "followed by extra bytes"
        raise UnpicklingError(f"signed pickle is {what}: the envelope says "
                              f"{length} payload bytes, found {view.nbytes - HEADER_SIZE}")
    if nbuffers != len(buffers):
        raise UnpicklingError(f"signed pickle was written with {nbuffers} out-of-band "
                              f"buffer(s); {len(buffers)} given")
    tag = view[_HEADER.size:HEADER_SIZE]
    payload = view[HEADER_SIZE:]
    # compare_digest takes time independent of where the tags differ: no timing oracle.
    if not hmac.compare_digest(_tag(key, header, payload, buffers), tag):
        raise UnpicklingError("signature does not verify: the data was modified or signed "
                              "with a different key; nothing was unpickled")
    return payload


def verify(data: bytes, key: bytes, buffers: Iterable[Any] = ()) -> bytes:
    """The pickle inside a signed envelope, after checking its tag.

    Raises :class:`pickle.UnpicklingError` for unsigned data, a wrong key, a truncated or
    modified envelope, or out-of-band ``buffers`` that differ from the signed ones. Nothing
    is unpickled here.
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


def loads(data: bytes, key: bytes, *, fix_imports: bool = True, encoding: str = "ASCII",
          errors: str = "strict", buffers: Optional[Iterable[Any]] = None) -> Any:
    """Verify the signed pickle ``data`` with ``key``, then unpickle it.

    Raises :class:`pickle.UnpicklingError` before unpickling anything if the tag does not
    verify. Other keywords are those of :func:`pickle.loads`.
    """
    bufs = list(buffers) if buffers is not None else []
    payload = _verified(data, key, bufs)
    return pickle.loads(payload, fix_imports=fix_imports, encoding=encoding, errors=errors,
                        buffers=bufs)


def _read_exactly(file: Any, n: int) -> bytes:
    chunks = []
    while n > 0:
        chunk = file.read(n)
        if not chunk:
            break
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def load(file: Any, key: bytes, *, fix_imports: bool = True, encoding: str = "ASCII",
         errors: str = "strict", buffers: Optional[Iterable[Any]] = None) -> Any:
    """Read one signed pickle from the binary ``file``, verify it, then unpickle it.

    Reads exactly one envelope, so several signed pickles can follow each other in a file.
    """
    head = _read_exactly(file, HEADER_SIZE)
    if len(head) < _HEADER.size or head[:len(MAGIC)] != MAGIC or head[len(MAGIC)] != VERSION:
        raise _refuse_header(memoryview(head))
    length = _HEADER.unpack(head[:_HEADER.size])[3]
    data = head + _read_exactly(file, length)
    return loads(data, key, fix_imports=fix_imports, encoding=encoding, errors=errors,
                 buffers=buffers)

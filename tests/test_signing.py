"""Signed pickles: HMAC-SHA256 envelopes refused, before unpickling, unless the tag verifies."""

import array
import contextlib
import hmac
import io
import mmap
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
from multiprocessing import shared_memory
from pickle import UnpicklingError
from typing import Any, Callable, Iterator, List, Tuple

import pytest
from conftest import PYTHON_IMPL, run_python

from fastfnpickle import signing

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))

# A pickle that runs code when loaded: sets a flag in sys. Written by hand (protocol 0) so it
# is plainly a hostile payload, not something fastfnpickle produced.
HOSTILE = b"cbuiltins\nexec\n(Vimport sys; sys.ffp_hostile_ran = True\ntR."


def _make_closure() -> Callable[[int], int]:
    offset = 7

    def add(x: int) -> int:
        return x + offset
    return add


def test_hostile_payload_really_runs_code_when_unsigned() -> None:
    # The premise of the whole module: without a signature, loading is running code.
    sys.__dict__.pop("ffp_hostile_ran", None)
    pickle.loads(HOSTILE)
    assert sys.__dict__.pop("ffp_hostile_ran") is True


def test_round_trip_in_process_and_in_fresh_interpreter(impl: Any) -> None:
    data = impl.dumps(_make_closure())
    signed = signing.sign(data, KEY)
    assert signing.verify(signed, KEY) == data
    assert signing.loads(signed, KEY)(1) == 8
    out = run_python(f"""
        import sys
        from fastfnpickle import signing
        f = signing.loads(sys.stdin.buffer.read(), bytes.fromhex({KEY.hex()!r}))
        print(f(35))
        """, signed, env=impl.env())
    assert out.strip() == "42"


def test_dumps_loads_convenience() -> None:
    signed = signing.dumps(_make_closure(), KEY)
    assert signed.startswith(signing.MAGIC)
    assert signing.loads(signed, KEY)(0) == 7
    out = run_python(f"""
        import sys
        from fastfnpickle import signing
        print(signing.loads(sys.stdin.buffer.read(), bytes.fromhex({KEY.hex()!r}))(3))
        """, signed)
    assert out.strip() == "10"


def test_dump_load_reads_one_envelope_at_a_time() -> None:
    f = io.BytesIO()
    signing.dump([1, 2], f, KEY)
    signing.dump(_make_closure(), f, KEY)
    f.seek(0)
    assert signing.load(f, KEY) == [1, 2]
    assert signing.load(f, KEY)(1) == 8
    assert f.read() == b""


def test_sign_is_deterministic(impl: Any) -> None:
    data = impl.dumps(_make_closure())
    assert signing.sign(data, KEY) == signing.sign(data, KEY)
    assert signing.sign(data, KEY) != signing.sign(data, OTHER_KEY)


def test_wrong_key_refused_before_unpickling() -> None:
    sys.__dict__.pop("ffp_hostile_ran", None)
    signed = signing.sign(HOSTILE, OTHER_KEY)
    with pytest.raises(UnpicklingError, match="does not verify"):
        signing.loads(signed, KEY)
    with pytest.raises(UnpicklingError, match="does not verify"):
        signing.verify(signed, KEY)
    assert not hasattr(sys, "ffp_hostile_ran")


def test_swapped_payload_refused_before_unpickling() -> None:
    """An attacker keeps a genuine header and tag and substitutes the payload."""
    sys.__dict__.pop("ffp_hostile_ran", None)
    genuine = signing.sign(b"\x80\x05K\x01." + b"\x00" * (len(HOSTILE) - 5), KEY)
    forged = genuine[:signing.HEADER_SIZE] + HOSTILE
    assert len(forged) == len(genuine)
    with pytest.raises(UnpicklingError, match="does not verify"):
        signing.loads(forged, KEY)
    assert not hasattr(sys, "ffp_hostile_ran")


def test_every_single_bit_flip_is_refused(impl: Any) -> None:
    signed = signing.sign(impl.dumps(_make_closure()), KEY)
    refused = 0
    for i in range(len(signed)):
        for bit in (0, 3, 7):
            bad = bytearray(signed)
            bad[i] ^= 1 << bit
            with pytest.raises(UnpicklingError):
                signing.verify(bytes(bad), KEY)
            refused += 1
    assert refused == 3 * len(signed)


def test_every_truncation_and_extension_is_refused() -> None:
    signed = signing.dumps({"a": _make_closure()}, KEY)
    for n in range(len(signed)):
        with pytest.raises(UnpicklingError):
            signing.loads(signed[:n], KEY)
    with pytest.raises(UnpicklingError, match="extra bytes"):
        signing.loads(signed + b"\x00", KEY)


def test_unsigned_pickle_is_recognised_and_refused(impl: Any) -> None:
    with pytest.raises(UnpicklingError, match="unsigned.*plain pickle.*arbitrary code"):
        signing.loads(impl.dumps(_make_closure()), KEY)
    with pytest.raises(UnpicklingError, match="unsigned"):
        signing.loads(HOSTILE, KEY)
    with pytest.raises(UnpicklingError, match="unsigned"):
        signing.loads(b"", KEY)


def test_unknown_envelope_version_is_refused() -> None:
    signed = bytearray(signing.dumps(1, KEY))
    signed[len(signing.MAGIC)] = 2
    with pytest.raises(UnpicklingError, match="version 2"):
        signing.loads(bytes(signed), KEY)


def test_signed_bytes_are_not_a_loadable_pickle() -> None:
    # Handing an envelope to plain pickle.loads must fail at once, not run the payload.
    sys.__dict__.pop("ffp_hostile_ran", None)
    with pytest.raises(UnpicklingError):
        pickle.loads(signing.sign(HOSTILE, KEY))
    assert not hasattr(sys, "ffp_hostile_ran")


@pytest.mark.parametrize("key", ["a str key", 12345, None])
def test_key_must_be_bytes(key: Any) -> None:
    with pytest.raises(TypeError, match="key"):
        signing.dumps(1, key)
    with pytest.raises(TypeError, match="key"):
        signing.verify(signing.dumps(1, KEY), key)


def test_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        signing.sign(b"x", b"")
    with pytest.raises(ValueError, match="empty"):
        signing.loads(signing.dumps(1, KEY), b"")


def test_bytes_like_keys_are_equivalent() -> None:
    signed = signing.dumps([1], KEY)
    assert signing.loads(signed, bytearray(KEY)) == [1]
    assert signing.loads(signed, memoryview(KEY)) == [1]


# --------------------------------------------------------------------------------------------
# Out-of-band buffers are covered by the tag too.

def _oob_payload() -> Any:
    blob = bytearray(b"0123456789" * 100)
    return {"buf": pickle.PickleBuffer(blob), "f": _make_closure()}


def _signed_with_buffers() -> "tuple[bytes, List[pickle.PickleBuffer]]":
    buffers: List[pickle.PickleBuffer] = []
    signed = signing.dumps(_oob_payload(), KEY, protocol=5, buffer_callback=buffers.append)
    return signed, buffers


def test_out_of_band_buffers_round_trip() -> None:
    signed, buffers = _signed_with_buffers()
    assert len(buffers) == 1
    obj = signing.loads(signed, KEY, buffers=buffers)
    assert bytes(obj["buf"]) == b"0123456789" * 100
    assert obj["f"](1) == 8
    raw = b"".join(bytes(b.raw()) for b in buffers)
    out = run_python(f"""
        import sys
        from fastfnpickle import signing
        data = sys.stdin.buffer.read()
        signed, buf = data[:{len(signed)}], bytearray(data[{len(signed)}:])
        obj = signing.loads(signed, bytes.fromhex({KEY.hex()!r}), buffers=[buf])
        print(bytes(obj["buf"])[:10].decode(), obj["f"](2))
        """, signed + raw)
    assert out.split() == ["0123456789", "9"]


def test_modified_out_of_band_buffer_is_refused() -> None:
    signed, buffers = _signed_with_buffers()
    tampered = bytearray(buffers[0].raw())
    tampered[500] ^= 1
    with pytest.raises(UnpicklingError, match="does not verify"):
        signing.loads(signed, KEY, buffers=[tampered])


def test_missing_or_extra_buffers_are_refused() -> None:
    signed, buffers = _signed_with_buffers()
    with pytest.raises(UnpicklingError, match="1 out-of-band"):
        signing.loads(signed, KEY)
    with pytest.raises(UnpicklingError, match="1 out-of-band"):
        signing.loads(signed, KEY, buffers=buffers + buffers)


def test_buffers_kept_in_band_by_the_callback_are_not_counted() -> None:
    signed = signing.dumps(_oob_payload(), KEY, protocol=5, buffer_callback=lambda b: True)
    obj = signing.loads(signed, KEY)
    assert bytes(obj["buf"]) == b"0123456789" * 100


def test_top_level_key_keyword_signs_and_verifies() -> None:
    import io as _io

    import fastfnpickle

    key = b"k" * 32
    offset = 5
    f = lambda x: x + offset  # noqa: E731
    signed = fastfnpickle.dumps(f, key=key)
    assert fastfnpickle.loads(signed, key=key)(1) == 6
    with pytest.raises(fastfnpickle.UnpicklingError):
        fastfnpickle.loads(signed, key=b"x" * 32)
    with pytest.raises(fastfnpickle.UnpicklingError):
        fastfnpickle.loads(fastfnpickle.dumps(f), key=key)  # unsigned data is refused
    buf = _io.BytesIO()
    fastfnpickle.dump(f, buf, key=key)
    fastfnpickle.dump(f, buf, key=key)
    buf.seek(0)
    assert fastfnpickle.load(buf, key=key)(2) == 7 and fastfnpickle.load(buf, key=key)(3) == 8
    # Without a key, loads/load are the stdlib's.
    assert fastfnpickle.loads(fastfnpickle.dumps(f))(0) == 5
    out = run_python("""
        import sys, fastfnpickle
        print(fastfnpickle.loads(sys.stdin.buffer.read(), key=b"k" * 32)(10))
    """, signed)
    assert out.strip() == "15"


# --------------------------------------------------------------------------------------------
# What is checked is what is unpickled: a buffer the caller (or another process) writes after
# the tag was checked must not change what loads.

BUFFER_KINDS = ["bytearray", "memoryview", "mmap", "array", "shared_memory"]


@contextlib.contextmanager
def _writable_buffer(kind: str, data: bytes) -> Iterator[Any]:
    """A buffer of ``kind`` holding ``data``, to be passed to loads and written meanwhile."""
    if kind == "bytearray":
        yield bytearray(data)
    elif kind == "memoryview":
        with memoryview(bytearray(data)) as view:
            yield view
    elif kind == "mmap":
        with mmap.mmap(-1, len(data)) as m:
            m.write(data)
            yield m
    elif kind == "array":
        yield array.array("B", data)
    else:
        shm = shared_memory.SharedMemory(create=True, size=len(data))
        try:
            with shm.buf[:len(data)] as view:
                view[:] = data
                yield view
        finally:
            shm.close()
            shm.unlink()


def _overwrite(buf: Any, offset: int, data: bytes) -> None:
    with memoryview(buf) as view:
        view[offset:offset + len(data)] = data


def _tamper_after_check(monkeypatch: Any, buf: Any, tampered_payload: bytes) -> List[bool]:
    """Make the tag check write ``tampered_payload`` into ``buf`` right after comparing:
    the window in which another writer could change a buffer loads has already verified."""
    real = hmac.compare_digest
    calls: List[bool] = []

    def compare_then_tamper(a: Any, b: Any) -> bool:
        result = real(a, b)
        _overwrite(buf, signing.HEADER_SIZE, tampered_payload)
        calls.append(result)
        return result

    monkeypatch.setattr(hmac, "compare_digest", compare_then_tamper)
    return calls


def _genuine_and_hostile(impl: Any) -> Tuple[bytes, bytes]:
    genuine = impl.dumps(_make_closure())
    assert len(genuine) > len(HOSTILE)
    # pickle.loads ignores bytes after STOP: the padded hostile payload is the same length.
    return genuine, HOSTILE + b"\0" * (len(genuine) - len(HOSTILE))


@pytest.mark.parametrize("kind", BUFFER_KINDS)
def test_buffer_written_after_the_check_loads_what_was_checked(
        impl: Any, kind: str, monkeypatch: Any) -> None:
    genuine, hostile = _genuine_and_hostile(impl)
    sys.__dict__.pop("ffp_hostile_ran", None)
    with _writable_buffer(kind, signing.sign(genuine, KEY)) as buf:
        calls = _tamper_after_check(monkeypatch, buf, hostile)
        f = signing.loads(buf, KEY)
        assert calls == [True]
        assert bytes(buf)[signing.HEADER_SIZE:] == hostile  # the write really happened
    assert f(1) == 8
    assert not hasattr(sys, "ffp_hostile_ran")


@pytest.mark.parametrize("kind", BUFFER_KINDS)
def test_verify_returns_the_bytes_it_checked(impl: Any, kind: str, monkeypatch: Any) -> None:
    genuine, hostile = _genuine_and_hostile(impl)
    with _writable_buffer(kind, signing.sign(genuine, KEY)) as buf:
        _tamper_after_check(monkeypatch, buf, hostile)
        assert signing.verify(buf, KEY) == genuine


def test_top_level_loads_of_a_buffer_written_after_the_check(monkeypatch: Any) -> None:
    import fastfnpickle

    genuine, hostile = _genuine_and_hostile(PYTHON_IMPL)
    sys.__dict__.pop("ffp_hostile_ran", None)
    buf = bytearray(signing.sign(genuine, KEY))
    _tamper_after_check(monkeypatch, buf, hostile)
    assert fastfnpickle.loads(buf, key=KEY)(2) == 9
    assert not hasattr(sys, "ffp_hostile_ran")


class _ReusedBufferFile:
    """A file whose read() returns one internal bytearray, refilled by the next read (as a
    ring buffer or a zero-copy transport might): what it returned is not the caller's to keep."""

    def __init__(self, data: bytes, max_read: int = 1 << 30) -> None:
        self.data = data
        self.pos = 0
        self.max_read = max_read
        self.buf = bytearray()

    def read(self, n: int) -> bytearray:
        n = min(n, self.max_read, len(self.data) - self.pos)
        self.buf[:] = self.data[self.pos:self.pos + n]
        self.pos += n
        return self.buf


@pytest.mark.parametrize("max_read", [1 << 30, 100])
def test_load_does_not_keep_the_buffer_read_returned(
        impl: Any, max_read: int, monkeypatch: Any) -> None:
    genuine, hostile = _genuine_and_hostile(impl)
    sys.__dict__.pop("ffp_hostile_ran", None)
    f = _ReusedBufferFile(signing.sign(genuine, KEY) + signing.dumps([1, 2], KEY), max_read)
    real = hmac.compare_digest

    def compare_then_tamper(a: Any, b: Any) -> bool:
        result = real(a, b)
        f.buf[:] = hostile[:len(f.buf)]
        return result

    monkeypatch.setattr(hmac, "compare_digest", compare_then_tamper)
    assert signing.load(f, KEY)(1) == 8
    assert signing.load(f, KEY) == [1, 2]
    assert not hasattr(sys, "ffp_hostile_ran")


_SHM_WRITER = """
import pickle, random, sys, time
from multiprocessing import shared_memory

name, start = sys.argv[1], int(sys.argv[2])
if sys.version_info >= (3, 13):
    shm = shared_memory.SharedMemory(name=name, track=False)
else:
    from multiprocessing import resource_tracker
    shm = shared_memory.SharedMemory(name=name)
    resource_tracker.unregister(shm._name, "shared_memory")  # the parent owns the segment
genuine, tampered = (pickle.dumps((list(range(100000)), c * 1000), 5) for c in "AB")
# Only the string at the end differs: the unpickler reaches it last, long after the tag.
diff = next(i for i, (x, y) in enumerate(zip(genuine, tampered)) if x != y)
genuine, tampered = genuine[diff:], tampered[diff:]
start += diff
view = shm.buf
rounds = 0
rng = random.Random(0)


def hold(seconds):
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


while view[0] == 0:
    view[start:start + len(tampered)] = tampered
    hold(rng.uniform(0, 1e-3))
    view[start:start + len(genuine)] = genuine
    hold(rng.uniform(0, 1e-3))
    rounds += 1
    view[8:16] = rounds.to_bytes(8, "little")
del view
shm.close()
"""


def _shm_payload(c: str) -> bytes:
    return pickle.dumps((list(range(100000)), c * 1000), 5)


def test_shared_memory_written_by_another_process_never_loads_tampered() -> None:
    """A second process keeps writing another pickle over the signed one in shared memory
    while this one loads from it: every load is the signed value or a refusal."""
    genuine = _shm_payload("A")
    assert len(_shm_payload("B")) == len(genuine)
    expected = pickle.loads(genuine)
    envelope = signing.sign(genuine, KEY)
    start = 16  # byte 0: stop flag; bytes 8-16: rounds the writer has done
    shm = shared_memory.SharedMemory(create=True, size=start + len(envelope))
    writer = None
    try:
        shm.buf[:start] = bytes(start)
        shm.buf[start:start + len(envelope)] = envelope
        writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_SHM_WRITER),
                                   shm.name, str(start + signing.HEADER_SIZE)])

        def rounds() -> int:
            return int.from_bytes(shm.buf[8:16], "little")

        deadline = time.monotonic() + 60
        while rounds() == 0:
            assert writer.poll() is None, "the writer process died"
            assert time.monotonic() < deadline, "the writer process never started writing"
            time.sleep(0.01)
        first = rounds()
        loaded = refused = 0
        with shm.buf[start:start + len(envelope)] as view:
            for _ in range(500):
                try:
                    value = signing.loads(view, KEY)
                except UnpicklingError as exc:
                    assert "does not verify" in str(exc)
                    refused += 1
                else:
                    assert value == expected, "a tampered payload was unpickled"
                    loaded += 1
        assert rounds() > first, "the writer did not run while loading"
        assert loaded + refused == 500
    finally:
        shm.buf[0] = 1
        if writer is not None:
            writer.wait(timeout=60)
        shm.close()
        shm.unlink()
    assert writer.returncode == 0


def test_bytes_are_not_copied() -> None:
    # The padding after STOP is never unpickled: the peak is what loads itself allocates.
    signed = signing.sign(pickle.dumps(1) + bytes(4 << 20), KEY)
    tracemalloc.start()
    try:
        assert signing.loads(signed, KEY) == 1
        no_copy = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        assert signing.loads(bytearray(signed), KEY) == 1
        one_copy = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert no_copy < 256 << 10
    assert one_copy >= len(signed)


def test_buffer_kinds_and_shapes() -> None:
    """Any C-contiguous buffer is read as its bytes in order; anything else is refused."""
    payload = pickle.dumps([3], 5)
    # Zeros after STOP are never read: they make the envelope a whole number of 8-byte rows.
    payload += bytes(-(signing.HEADER_SIZE + len(payload)) % 8)
    signed = signing.sign(payload, KEY)
    rows = len(signed) // 8
    assert signing.loads(array.array("q", signed), KEY) == [3]
    assert signing.loads(memoryview(bytearray(signed)).cast("B", (rows, 8)), KEY) == [3]
    assert signing.loads(memoryview(signed).cast("d"), KEY) == [3]
    with pytest.raises(BufferError, match="C-contiguous"):
        signing.loads(memoryview(signed * 2)[::2], KEY)
    with pytest.raises(BufferError, match="C-contiguous"):
        signing.loads(memoryview(signed).cast("B", (rows, 8))[::2], KEY)
    with pytest.raises(TypeError, match="not str"):
        signing.loads(signed.decode("latin-1"), KEY)
    with pytest.raises(TypeError, match="not str"):
        signing.verify(signed.decode("latin-1"), KEY)
    with pytest.raises(TypeError, match="bytes-like object, not int"):
        signing.loads(12, KEY)


def test_refused_buffer_is_not_held() -> None:
    """A refusal keeps no view of the caller's buffer alive in its traceback."""
    signed = signing.dumps(1, OTHER_KEY)
    buf = bytearray(signed)
    with pytest.raises(UnpicklingError) as refused_bytearray:
        signing.loads(buf, KEY)
    m = mmap.mmap(-1, len(signed))
    m.write(signed)
    with pytest.raises(UnpicklingError) as refused_mmap:
        signing.loads(m, KEY)
    # Both exceptions, and the frames in their tracebacks, are alive here: a view those frames
    # held would make these a BufferError.
    buf += b"resized"
    m.close()
    assert refused_bytearray.value is not None and refused_mmap.value is not None


# --------------------------------------------------------------------------------------------
# load(file): the payload length comes from a header nobody has verified yet.

def _header(length: int, fmt: str = ">5sBIQ") -> bytes:
    return struct.pack(fmt, signing.MAGIC, signing.VERSION, 0, length) + bytes(32)


@contextlib.contextmanager
def _stream(kind: str, data: bytes) -> Iterator[Any]:
    if kind == "BytesIO":
        yield io.BytesIO(data)
        return
    # A real file: BufferedReader.read(n) allocates n bytes before reading anything.
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(0)
        yield f


def _peak_while(fn: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("stream", ["BytesIO", "file"])
@pytest.mark.parametrize("header", [
    pytest.param(_header(2 ** 40), id="2**40"),
    pytest.param(_header(2 ** 64 - 1), id="2**64-1"),
    pytest.param(_header(-1, ">5sBIq"), id="-1"),
    pytest.param(_header(signing.MAX_LOAD_SIZE + 1), id="MAX_LOAD_SIZE+1"),
])
def test_load_refuses_a_length_over_max_size(stream: str, header: bytes) -> None:
    sys.__dict__.pop("ffp_hostile_ran", None)
    with _stream(stream, header + HOSTILE) as f:
        def load() -> None:
            with pytest.raises(UnpicklingError, match="max_size"):
                signing.load(f, KEY)
        assert _peak_while(load) < 256 << 10
        assert f.tell() == signing.HEADER_SIZE  # nothing of the payload was read
    assert not hasattr(sys, "ffp_hostile_ran")


@pytest.mark.parametrize("stream", ["BytesIO", "file"])
@pytest.mark.parametrize("length, max_size", [
    pytest.param(512 << 20, None, id="512MiB"),
    pytest.param(2 ** 40, 2 ** 62, id="2**40-raised-max"),
    pytest.param(2 ** 64 - 1, 2 ** 64, id="2**64-1-raised-max"),
])
def test_load_of_a_stream_shorter_than_its_header_says(
        stream: str, length: int, max_size: Any) -> None:
    with _stream(stream, _header(length) + b"\x80\x05K\x01." * 1000) as f:
        def load() -> None:
            with pytest.raises(UnpicklingError, match="truncated.*ended after 5000"):
                signing.load(f, KEY, max_size=max_size)
        # One read's worth (1 MiB) at most, never the claimed length.
        assert _peak_while(load) < 3 << 20


def test_load_refuses_every_truncation() -> None:
    data = signing.dumps({"a": _make_closure(), "b": bytes(3 << 20)}, KEY)
    for n in [*range(0, signing.HEADER_SIZE + 3), 1 << 20, (1 << 20) + 1, len(data) - 1]:
        with pytest.raises(UnpicklingError, match="truncated|unsigned"):
            signing.load(io.BytesIO(data[:n]), KEY)


def test_max_size_bound_is_on_the_payload() -> None:
    data = signing.dumps(list(range(100)), KEY)
    payload = len(data) - signing.HEADER_SIZE
    assert signing.load(io.BytesIO(data), KEY, max_size=payload) == list(range(100))
    with pytest.raises(UnpicklingError, match=f"claims {payload} payload bytes.*max_size"):
        signing.load(io.BytesIO(data), KEY, max_size=payload - 1)
    with pytest.raises(ValueError, match="negative"):
        signing.load(io.BytesIO(data), KEY, max_size=-1)
    with pytest.raises(TypeError):
        signing.load(io.BytesIO(data), KEY, max_size=1e9)


def test_max_load_size_is_the_default_and_can_be_raised(monkeypatch: Any) -> None:
    import fastfnpickle

    data = signing.dumps(bytes(5000), KEY)
    monkeypatch.setattr(signing, "MAX_LOAD_SIZE", 4000)
    with pytest.raises(UnpicklingError, match="max_size=4000"):
        fastfnpickle.load(io.BytesIO(data), key=KEY)
    assert signing.load(io.BytesIO(data), KEY, max_size=10_000) == bytes(5000)
    monkeypatch.setattr(signing, "MAX_LOAD_SIZE", 10_000)
    assert fastfnpickle.load(io.BytesIO(data), key=KEY) == bytes(5000)


class _TrickleFile(io.RawIOBase):
    """A stream that returns at most ``step`` bytes per read, as a pipe or socket may."""

    def __init__(self, data: bytes, step: int) -> None:
        self.inner = io.BytesIO(data)
        self.step = step

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self.inner.read(min(n, self.step) if n >= 0 else self.step)

    def tell(self) -> int:
        return self.inner.tell()


@pytest.mark.parametrize("step", [1 << 30, 65537, 7])
def test_load_leaves_the_file_right_after_each_envelope(impl: Any, step: int) -> None:
    # More than one read's worth: the chunked path, with short reads across its chunks.
    big = os.urandom((2 << 20) + 123 if step > 7 else 1000)
    envelopes = [signing.sign(impl.dumps(_make_closure()), KEY), signing.dumps(big, KEY),
                 signing.dumps([], KEY), signing.dumps(None, KEY)]
    f = _TrickleFile(b"".join(envelopes) + b"tail", step)
    ends = [sum(map(len, envelopes[:i + 1])) for i in range(len(envelopes))]
    assert signing.load(f, KEY)(1) == 8
    assert f.tell() == ends[0]
    assert signing.load(f, KEY) == big
    assert f.tell() == ends[1]
    assert signing.load(f, KEY) == []
    assert f.tell() == ends[2]
    assert signing.load(f, KEY) is None
    assert f.tell() == ends[3]
    assert f.read(100) == b"tail"


def test_load_checks_the_tag_before_unpickling() -> None:
    sys.__dict__.pop("ffp_hostile_ran", None)
    f = io.BytesIO(signing.sign(HOSTILE, OTHER_KEY))
    with pytest.raises(UnpicklingError, match="does not verify"):
        signing.load(f, KEY)
    genuine = signing.sign(b"\x80\x05K\x01." + b"\x00" * (len(HOSTILE) - 5), KEY)
    with pytest.raises(UnpicklingError, match="does not verify"):
        signing.load(io.BytesIO(genuine[:signing.HEADER_SIZE] + HOSTILE), KEY)
    assert not hasattr(sys, "ffp_hostile_ran")


def test_load_from_a_text_file_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="binary mode"):
        signing.load(io.StringIO("\xffFFPS"), KEY)
